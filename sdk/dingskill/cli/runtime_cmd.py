"""``dingskill run``: the Stream runtime serving the installed skills."""

from __future__ import annotations

import argparse
import errno
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
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="override processes.count: N worker processes, each with its own Stream "
        "connection (0: one per core)",
    )
    p.add_argument(
        "--print-config", action="store_true", help="print the effective configuration (redacted)"
    )
    p.set_defaults(func=_run)
    s = sub.add_parser(
        "send",
        help="send a proactive message through the robot OpenAPI (qyapi_robot_sendmsg)",
        description="Write to a user (1:1, by staff id) or a group (by open conversation id) "
        "with the app of the runtime configuration (DINGSKILL_APP_KEY / DINGSKILL_APP_SECRET).",
    )
    who = s.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="STAFF_ID", help="the user's staff id (1:1 message)")
    who.add_argument(
        "--group", metavar="OPEN_CONVERSATION_ID", help="the group's open conversation id"
    )
    s.add_argument("text", help="the message (text; markdown with --title)")
    s.add_argument("--title", default=None, help="send as markdown with this title")
    s.add_argument("--config", default=None, help="runtime configuration (endpoint, credentials)")
    s.set_defaults(func=_send)


def _run(args) -> int:
    from ..runtime.config import ConfigError, load_config

    overrides: dict = {}
    if args.home:
        overrides["skills"] = {"home": args.home}
    if args.port is not None:
        overrides["server"] = {"port": args.port}
    if args.processes is not None:
        overrides["processes"] = {"count": args.processes}
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
    from ..runtime.supervisor import check_processes, process_count, worker_role

    try:
        role = worker_role()
        count = process_count(config) if role is None else role.count
        check_processes(config, count)
        if role is None and count > 1:
            return _supervise(config, count)
        runtime = Runtime(config, role=role)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _logging(config, runtime.redactor)
    from ..runtime.app import tune_collector
    from ..runtime.channels.stream import EndpointUnreachable
    from ..runtime.stores import StoreUnavailable

    tune_collector(config.get("processes.gc_thresholds"))
    try:
        asyncio.run(runtime.run())
    except (StoreUnavailable, EndpointUnreachable) as exc:  # one line: the address, the fix
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        port = config.get("server.port")
        print(
            f"error: cannot listen on port {port} ({exc.strerror}): stop what uses it "
            "or pick another with --port / server.port",
            file=sys.stderr,
        )
        return 1
    return 0


def _logging(config, redactor) -> None:
    """Logging as ``config.logging`` says, with ``redactor`` keeping secrets out."""
    from ..runtime.logs import setup_logging

    setup_logging(
        config.get("logging.level"),
        redactor,
        config.get("logging.path"),
        config.get("logging.format"),
        config.get("logging.service_name"),
    )


def _supervise(config, count: int) -> int:
    """Start ``count`` workers running this same command and keep them running."""
    from ..runtime.supervisor import Supervisor
    from ..security.redact import Redactor

    _logging(config, Redactor([config.app_secret or ""]))
    import asyncio

    from ..runtime.channels.stream import EndpointUnreachable
    from ..runtime.stores import StoreUnavailable
    from ..runtime.supervisor import preflight

    try:  # one line for an unreachable store or endpoint, not one per worker
        asyncio.run(preflight(config))
    except (StoreUnavailable, EndpointUnreachable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    argv = [sys.executable, "-m", "dingskill.cli.main", *sys.argv[1:]]
    return Supervisor(argv, count, config.get("processes.restart_max_backoff_s")).run()


def _send(args) -> int:
    import asyncio

    from ..runtime.config import ConfigError, load_config
    from ..runtime.proactive import ProactiveError, send

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not config.app_key or not config.app_secret:
        print(
            "error: no app credentials: set DINGSKILL_APP_KEY and DINGSKILL_APP_SECRET "
            "(or channels.enterprise_chat.auth in the configuration)",
            file=sys.stderr,
        )
        return 2
    endpoint = config.get("channels.enterprise_chat.endpoint") or "https://api.dingtalk.com"
    try:
        result = asyncio.run(
            send(
                endpoint,
                config.app_key,
                config.app_secret,
                args.text,
                args.user,
                args.group,
                args.title,
            )
        )
    except (ProactiveError, OSError) as exc:
        print(f"error: not sent: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"sent": True, "to": args.user or args.group, **result}, ensure_ascii=False))
    return 0
