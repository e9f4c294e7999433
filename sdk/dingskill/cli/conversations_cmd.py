"""``dingskill test-conversations SKILL... CASES...``: replay saved conversations with the
skills loaded together and report task success and turn accuracy per language."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "test-conversations",
        help="replay conversations (JSON Lines) against skills loaded together: task success "
        "and turn accuracy per language",
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="skill folders (holding skill.yaml), then case files or folders of *.jsonl",
    )
    p.add_argument(
        "--today",
        default=None,
        metavar="YYYY-MM-DD",
        help="the date 明天 / 'next Monday' are resolved against (default: the real today)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..notebook.conversation_report import run_conversations
    from ..notebook.regression import CaseError
    from ..skills import Skill, SkillError

    skill_dirs = [p for p in args.paths if (Path(p) / "skill.yaml").is_file()]
    cases = [p for p in args.paths if p not in skill_dirs]
    if not skill_dirs or not cases:
        print(
            "error: give skill folders (with skill.yaml) and then case files "
            "(e.g. dingskill test-conversations skills/hr-assistant cases.jsonl)",
            file=sys.stderr,
        )
        return 2
    missing = [c for c in cases if not Path(c).exists()]
    if missing:
        print(f"error: {missing[0]}: no such file or folder", file=sys.stderr)
        return 2
    today = None
    if args.today:
        try:
            today = dt.date.fromisoformat(args.today)
        except ValueError:
            print(f"error: --today {args.today!r} is not a date YYYY-MM-DD", file=sys.stderr)
            return 2
    try:
        skills = [Skill.load(d) for d in skill_dirs]
        report = run_conversations(skills, cases, today=today)
    except (SkillError, CaseError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(report.to_json())
        return 0 if report.ok else 1
    for f, m in report.failures:
        print(f"{f}:{m}")
    if not report.total.turns:
        print("no turns: the case files are empty")
        return 2
    print(report.table())
    where = cases[0] if len(cases) == 1 else f"{len(report.files)} files"
    print(f"{where}: {'all turns match' if report.ok else f'{len(report.failures)} mismatch(es)'}")
    return 0 if report.ok else 1
