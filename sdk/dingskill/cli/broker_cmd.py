"""``dingskill gateway | worker | audit-writer | dlq``: the services of the split deployment
over RabbitMQ (``broker:`` section of the runtime configuration)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from ._print import safe_line


def register(sub: argparse._SubParsersAction) -> None:
    for name, help_text in (
        ("gateway", "hold the DingTalk connection and publish messages to the broker"),
        ("worker", "answer messages from the broker with the installed skills"),
        ("audit-writer", "write the audit chain from the records workers publish"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", default=None, help="JSON or YAML runtime configuration")
        p.add_argument("--port", type=int, default=None, help="override server.port")
        if name == "worker":
            p.add_argument("--home", default=None, help="DINGSKILL_HOME holding the skills")
        p.set_defaults(func=_service, service=name)
    d = sub.add_parser("dlq", help="list, show, replay or purge dead-lettered messages")
    ds = d.add_subparsers(dest="dlq", metavar="ACTION", required=True)
    for action, help_text in (
        ("list", "one line per dead letter"),
        ("show", "one dead letter in full"),
        ("replay", "send dead letters back to their queue (all, or one ID)"),
        ("purge", "delete every dead letter"),
    ):
        p = ds.add_parser(action, help=help_text)
        p.add_argument("--config", default=None, help="JSON or YAML runtime configuration")
        p.add_argument(
            "--token",
            default=None,
            help="an admin API token (`dingskill access token NAME admin`; or DINGSKILL_TOKEN)",
        )
        if action == "show":
            p.add_argument("id", help="message id (from `dingskill dlq list`)")
        if action == "replay":
            p.add_argument("id", nargs="?", default=None, help="message id (default: all)")
        if action == "list":
            p.add_argument("--json", action="store_true", help="one JSON object per line")
        p.set_defaults(func=_dlq)


def _load(args):
    from ..runtime.config import load_config

    overrides: dict = {}
    if getattr(args, "home", None):
        overrides["skills"] = {"home": args.home}
    if getattr(args, "port", None) is not None:
        overrides["server"] = {"port": args.port}
    return load_config(args.config, overrides=overrides or None)


def _service(args) -> int:
    from ..runtime.broker.amqp import BrokerUnavailable
    from ..runtime.config import ConfigError
    from ..runtime.logs import setup_logging
    from ..security.redact import Redactor

    try:
        config = _load(args)
        if args.service == "gateway":
            from ..runtime.broker.gateway import Gateway

            service = Gateway(config)
        elif args.service == "worker":
            from ..runtime.broker.worker import Worker

            service = Worker(config)
        else:
            from ..runtime.broker.audit_writer import AuditWriter

            service = AuditWriter(config)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(
        config.get("logging.level"),
        Redactor([config.app_secret or ""]),
        config.get("logging.path"),
    )
    from ..runtime.app import tune_collector

    tune_collector(config.get("processes.gc_thresholds"))
    try:
        asyncio.run(service.run())
    except BrokerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _dlq(args) -> int:
    from ..runtime.broker.amqp import BrokerUnavailable
    from ..runtime.broker.auth import BrokerKeyError
    from ..runtime.broker.dlq import DlqRefused, run_dlq
    from ..runtime.config import ConfigError

    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("DINGSKILL_TOKEN")
    try:
        result = run_dlq(config, token, args.dlq, getattr(args, "id", None))
    except DlqRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (BrokerUnavailable, BrokerKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.dlq == "list":
        for d in result:
            if args.json:
                print(json.dumps(d.summary(), ensure_ascii=False))
            else:
                print(
                    safe_line(
                        f"{d.id}  attempts={d.attempts}  {d.reason}  {d.conversation}  "
                        f"{d.text[:40]!r}  {d.error[:80]}"
                    )
                )
        if not args.json:
            print(f"{len(result)} dead letter(s)")
    elif args.dlq == "show":
        if not result:
            print(f"error: no dead letter with id {safe_line(args.id)}", file=sys.stderr)
            return 1
        d = result[0]
        full = {**d.summary(), "text": d.text, "body": d.body}
        print(json.dumps(full, ensure_ascii=False, indent=2))  # controls stripped on output
    elif args.dlq == "replay":
        if args.id and not result:
            print(f"error: no dead letter with id {safe_line(args.id)}", file=sys.stderr)
            return 1
        print(f"replayed {len(result)} message(s)")
    else:
        print(f"purged {result} message(s)")
    return 0
