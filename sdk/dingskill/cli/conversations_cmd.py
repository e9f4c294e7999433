"""``dingskill test-conversations SKILL... CASES``: replay saved conversations."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "test-conversations", help="replay regression cases (JSON Lines) against skills"
    )
    p.add_argument("skills", nargs="+", help="skill folders, then the cases file last")
    p.add_argument(
        "--today",
        metavar="YYYY-MM-DD",
        help="the date 明天 / 'next Monday' are resolved against (default: the real today)",
    )
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..notebook.regression import CaseError, replay_cases
    from ..skills import Skill, SkillError

    *skill_dirs, cases = args.skills
    if not skill_dirs:
        print("error: give at least one skill folder before the cases file", file=sys.stderr)
        return 2
    today = None
    if getattr(args, "today", None):
        import datetime as dt

        try:
            today = dt.date.fromisoformat(args.today)
        except ValueError:
            print(f"error: --today {args.today!r} is not a date YYYY-MM-DD", file=sys.stderr)
            return 2
    try:
        skills = [Skill.load(d) for d in skill_dirs]
        problems = replay_cases(skills, cases, today=today)
    except (SkillError, CaseError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"{cases}:{p}")
    print(f"{cases}: {'all turns match' if not problems else f'{len(problems)} mismatch(es)'}")
    return 1 if problems else 0
