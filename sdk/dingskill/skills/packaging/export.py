"""``export_skill``: a skill's package files -> ``DIST/<id>-<version>.skill``."""

from __future__ import annotations

from pathlib import Path

from .archive import make_record, write_archive
from .signing import load_signer, sign_record

__all__ = ["export_skill", "package_name"]


def package_name(skill_id: str, version: str) -> str:
    return f"{skill_id}-{version}.skill"


def export_skill(skill, dist, key=None) -> Path:
    """Write the package (deterministic bytes; signed with ``key``: a PEM key file or
    ``pkcs11:LABEL`` for a key held in the configured PKCS#11 token)."""
    files = skill.package_files()
    signature = None
    if key is not None:
        signature = sign_record(make_record(files), load_signer(key))
    data = write_archive(files, signature)
    dist = Path(dist)
    dist.mkdir(parents=True, exist_ok=True)
    out = dist / package_name(skill.manifest.id, skill.manifest.version)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out
