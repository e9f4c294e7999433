"""``dingskill audit``: verify and read the tamper-evident audit logs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="verify or read an audit log")
    s = p.add_subparsers(dest="audit", metavar="ACTION", required=True)
    v = s.add_parser("verify", help="check the hash chain of audit files")
    v.add_argument(
        "paths", nargs="*", help="audit .jsonl files (default: all under DINGSKILL_HOME/audit)"
    )
    v.add_argument("--home", default=None, help="DINGSKILL_HOME (default ~/.dingskill)")
    v.set_defaults(func=_verify)
    show = s.add_parser("show", help="print the (decrypted) records of an audit file")
    show.add_argument("path", help="an audit .jsonl file")
    show.add_argument("--tail", type=int, default=20, help="print the last N records (default 20)")
    show.set_defaults(func=_show)


def _files(args) -> list[Path]:
    if args.paths:
        return [Path(p) for p in args.paths]
    home = Path(args.home or os.environ.get("DINGSKILL_HOME") or Path.home() / ".dingskill")
    return sorted((home / "audit").glob("*.jsonl"))


def _verify(args) -> int:
    from ..security.audit_chain import verify_chain
    from ..security.crypto import CryptoError, Keyring

    try:
        ring = Keyring.from_env()
    except CryptoError as exc:
        print(f"error: {exc}")
        return 1
    files = _files(args)
    if not files:
        print("no audit files found")
        return 1
    bad = 0
    for path in files:
        if not path.exists():
            print(f"{path}: not found")
            bad += 1
            continue
        problems = verify_chain(path, ring)
        n = sum(1 for line in path.open(encoding="utf-8") if line.strip())
        print(
            f"{path}: {n} record(s), "
            + ("intact" if not problems else f"{len(problems)} problem(s)")
        )
        for p in problems:
            print(f"{path}:{p}")
        bad += bool(problems)
    return 1 if bad else 0


def _show(args) -> int:
    from ..security.audit_chain import AuditChain
    from ..security.crypto import Keyring

    path = Path(args.path)
    if not path.is_file():  # AuditChain would create its folder: reading creates nothing
        print(
            f"error: {path}: no such audit file (see `dingskill audit verify` for the files "
            "under DINGSKILL_HOME/audit)",
            file=sys.stderr,
        )
        return 1
    chain = AuditChain(path, keyring=Keyring.from_env())
    records = list(chain.records())
    for r in records[-args.tail :]:
        print(json.dumps(r, ensure_ascii=False))
    return 0
