"""The ``dingskill`` command line: one module per command group, each with ``register()``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .._version import __version__

# Each module exposes ``register(subparsers)``; the parsers it adds set ``func(args) -> int``.
COMMAND_MODULES = [
    "dingskill.cli.datasets_cmd",
    "dingskill.cli.nlu_cmd",
    "dingskill.cli.bench_cmd",
    "dingskill.cli.skills_cmd",
    "dingskill.cli.plugins_cmd",
    "dingskill.cli.market_cmd",
    "dingskill.cli.release_cmd",
    "dingskill.cli.report_cmd",
    "dingskill.cli.runtime_cmd",
    "dingskill.cli.broker_cmd",
    "dingskill.cli.emulator_cmd",
    "dingskill.cli.conversations_cmd",
    "dingskill.cli.access_cmd",
    "dingskill.cli.audit_cmd",
    "dingskill.cli.demo_cmd",
    "dingskill.cli.doctor_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dingskill", description="Build, ship and run DingTalk chat-bot skills."
    )
    parser.add_argument("--version", action="version", version=f"dingskill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command group not built yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..project import ProjectNotFound
    from ._print import safe_output

    try:
        with safe_output():  # index, manifest and user text never drive the terminal
            return int(args.func(args) or 0)
    except ProjectNotFound as exc:  # a command that needs the project, run elsewhere
        print(f"dingskill: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
