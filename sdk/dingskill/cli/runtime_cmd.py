"""``dingskill run``: the Stream runtime serving the installed skills."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="serve the installed skills on DingTalk (Stream or webhook mode)"
    )
    p.add_argument(
        "--config", default=None, help="JSON or YAML file (default: embedded defaults, SQLite)"
    )
    p.add_argument("--home", default=None, help="DINGSKILL_HOME holding the installed skills")
    p.add_argument("--port", type=int, default=None, help="override server.port")
    p.add_argument(
        "--print-config", action="store_true", help="print the effective configuration (redacted)"
    )
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..runtime.config import ConfigError, load_config

    overrides: dict = {}
    if args.home:
        overrides["skills"] = {"home": args.home}
    if args.port is not None:
        overrides["server"] = {"port": args.port}
    try:
        config = load_config(args.config, overrides=overrides or None)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(config.redacted(), indent=2, ensure_ascii=False))
        return 0
    import asyncio

    from ..runtime.app import Runtime
    from ..runtime.logs import setup_logging

    try:
        runtime = Runtime(config)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(
        config.get("logging.level"),
        runtime.redactor,
        config.get("logging.path"),
        config.get("logging.format"),
        config.get("logging.service_name"),
    )
    asyncio.run(runtime.run())
    return 0
