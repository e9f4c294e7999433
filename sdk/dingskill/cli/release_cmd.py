"""``dingskill release``: who sees which installed skill version (developers, groups, a share
of users, everyone) and the blue-green switch between two installed versions."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "release", help="visibility of skill versions, staged release, blue-green switch"
    )
    r.add_argument("--home", default=None, help="DINGSKILL_HOME (default ~/.dingskill)")
    r.add_argument("--actor", default=os.environ.get("USER", "cli"), help="recorded in the audit")
    rs = r.add_subparsers(dest="release", metavar="ACTION", required=True)
    sh = rs.add_parser("show", help="stable version, staged versions and who sees them")
    sh.add_argument("skill_id", nargs="?", help="one skill (default: every installed skill)")
    sh.add_argument("--json", action="store_true", help="print JSON")
    sh.set_defaults(func=_show)
    st = rs.add_parser("set", help="limit an installed version to an audience")
    st.add_argument("skill_id", help="skill id, e.g. com.dingskill.hr-assistant")
    st.add_argument("version", help="an installed version of it")
    who = st.add_mutually_exclusive_group(required=True)
    who.add_argument("--developers", metavar="STAFF_ID,...", help="only these staff ids")
    who.add_argument("--groups", metavar="CONVERSATION_ID,...", help="only these group chats")
    who.add_argument("--percent", type=float, help="this share of users (stable per user)")
    who.add_argument("--everyone", action="store_true", help="everyone sees this version")
    who.add_argument("--nobody", action="store_true", help="clear the version's rule")
    st.set_defaults(func=_set)
    sw = rs.add_parser("switch", help="make another installed version the stable one (atomic)")
    sw.add_argument("skill_id", help="skill id, e.g. com.dingskill.hr-assistant")
    sw.add_argument("version", help="the installed version to make stable")
    sw.set_defaults(func=_switch)
    bk = rs.add_parser("back", help="switch back to the version the last switch replaced")
    bk.add_argument("skill_id", help="skill id, e.g. com.dingskill.hr-assistant")
    bk.set_defaults(func=_back)


def _manager(args):
    from ..security.audit_chain import AuditChain
    from ..security.crypto import Keyring
    from ..skills.packaging import SkillHome
    from ..skills.release import ReleaseManager

    home = SkillHome(args.home)
    chain = AuditChain(Path(home.home) / "audit" / "admin.jsonl", keyring=Keyring.from_env())
    return ReleaseManager(home, audit=lambda rec: chain.append({"kind": "admin", **rec}))


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _print_plan(plan) -> None:
    print(f"{plan.skill_id}: stable {plan.stable}", end="")
    rule = plan.rules.get(plan.stable)
    print(f" (visible to {rule.describe()})" if rule else " (visible to everyone)", end="")
    print(f"; switch back to {plan.previous}" if plan.previous else "")
    for v in plan.staged:
        print(f"  staged {v}: {plan.rules[v].describe()}")


def _show(args) -> int:
    from ..skills.release import ReleaseError

    m = _manager(args)
    try:
        plans = [m.plan(args.skill_id)] if args.skill_id else m.plans()
    except ReleaseError as exc:
        print(f"error: {exc}")
        return 1
    if args.json:
        print(json.dumps([p.to_dict() for p in plans], ensure_ascii=False))
        return 0
    if not plans:
        print("no skills installed")
    for p in plans:
        _print_plan(p)
    return 0


def _set(args) -> int:
    from ..skills.release import Audience, ReleaseError, Visibility

    try:
        if args.nobody:
            vis = None
        elif args.developers:
            vis = Visibility(Audience.DEVELOPERS, staff=_split(args.developers))
        elif args.groups:
            vis = Visibility(Audience.GROUPS, groups=_split(args.groups))
        elif args.percent is not None:
            vis = Visibility(Audience.PERCENT, percent=args.percent)
        else:
            vis = Visibility(Audience.EVERYONE)
        plan = _manager(args).set_visibility(args.skill_id, args.version, vis, args.actor)
    except ReleaseError as exc:
        print(f"error: {exc}")
        return 1
    _print_plan(plan)
    return 0


def _switch(args) -> int:
    from ..skills.release import ReleaseError

    try:
        plan = _manager(args).switch(args.skill_id, args.version, args.actor)
    except ReleaseError as exc:
        print(f"error: {exc}")
        return 1
    _print_plan(plan)
    return 0


def _back(args) -> int:
    from ..skills.release import ReleaseError

    try:
        plan = _manager(args).switch_back(args.skill_id, args.actor)
    except ReleaseError as exc:
        print(f"error: {exc}")
        return 1
    _print_plan(plan)
    return 0
