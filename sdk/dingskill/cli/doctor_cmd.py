"""``dingskill doctor``: check Python, packages, storage, broker, credentials, port, skills."""

from __future__ import annotations

import argparse
import json

MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor", help="check this machine and a runtime configuration (exit 1 on failures)"
    )
    p.add_argument(
        "--config", default=None, help="runtime configuration to check (default: embedded)"
    )
    p.add_argument(
        "--broker",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check the RabbitMQ broker (default: when the configuration has a broker section)",
    )
    p.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per network check (default 5)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_doctor)


def _doctor(args) -> int:
    from ..runtime.doctor import Status, run_checks

    checks = run_checks(args.config, timeout_s=args.timeout, broker=args.broker)
    failed = [c for c in checks if c.status is Status.FAIL]
    if args.json:
        print(
            json.dumps(
                {"ok": not failed, "checks": [c.to_dict() for c in checks]}, ensure_ascii=False
            )
        )
        return 1 if failed else 0
    for c in checks:
        print(f"{MARK[c.status.value]} {c.name:<12} {c.detail}")
        if c.fix and c.status is not Status.OK:
            print(f"     {'':<12} -> {c.fix}")
    print(f"{len(failed)} problem(s)" if failed else "all checks passed")
    return 1 if failed else 0
