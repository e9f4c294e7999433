"""Key rotation of data at rest: re-seal stored contexts, stored audit records and the audit
files with the keyring's new active key (``dingskill keys rotate``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..security.audit_chain import AuditChain
from ..security.crypto import Keyring
from .config import load_config
from .stores import make_store

__all__ = ["reencrypt_all"]


def reencrypt_all(config_path, keyring: Keyring, home=None) -> int:
    """Re-encrypt everything the runtime configured by ``config_path`` stores; returns the
    number of values re-sealed. ``keyring`` holds the new active key and the old ones."""
    overrides = {"skills": {"home": str(home)}} if home else None
    config = load_config(config_path, overrides=overrides)

    async def stores() -> int:
        store = make_store(config, keyring)
        await store.connect()
        try:
            return await store.reencrypt(keyring)
        finally:
            await store.close()

    n = asyncio.run(stores())
    audit_dir = Path(config.get("audit.path")).parent
    for path in sorted(audit_dir.glob("*.jsonl")):
        n += AuditChain(path, keyring=keyring).reencrypt(keyring)
    return n
