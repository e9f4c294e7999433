"""``dingskill access``: roles, API tokens, temporary grants and the report of who holds what."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..security.rbac import AccessControl

# the security modules (cryptography) are imported by the commands, not by `dingskill --help`


def _home(args) -> Path:
    return Path(args.home or os.environ.get("DINGSKILL_HOME") or Path.home() / ".dingskill")


def _acl(args) -> AccessControl:
    from ..security.audit_chain import AuditChain
    from ..security.crypto import Keyring
    from ..security.rbac import AccessControl

    home = _home(args)
    chain = AuditChain(home / "audit" / "admin.jsonl", keyring=Keyring.from_env())
    return AccessControl(home / "access.json", audit=chain.append)


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def _fmt_ms(ms) -> str:
    return "never" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("access", help="roles, API tokens and temporary grants (RBAC)")
    p.add_argument("--home", default=None, help="DINGSKILL_HOME (default ~/.dingskill)")
    s = p.add_subparsers(dest="access", metavar="ACTION", required=True)

    g = s.add_parser("grant", help="give a subject a role (temporary with --for)")
    g.add_argument("subject", help="staff:<staffId> or token:<id>")
    g.add_argument("role", help="viewer, operator or admin")
    g.add_argument("--for", dest="duration", default=None, help="e.g. 30m, 8h, 2d (temporary)")
    g.add_argument("--reason", default="", help="why (kept in the audit log)")
    g.add_argument(
        "--actor",
        default=os.environ.get("USER", "cli"),
        help="who grants (default: $USER), recorded in the audit log",
    )
    g.set_defaults(func=_grant)

    r = s.add_parser("revoke", help="remove a grant (by id) or all of a subject's roles")
    r.add_argument("target", help="a grant id or a subject (staff:<id>, token:<id>)")
    r.set_defaults(func=_revoke)

    t = s.add_parser("token", help="create an API token for the admin HTTP API")
    t.add_argument("name", help="a name for the token (shown in the audit log)")
    t.add_argument("role", help="viewer, operator or admin")
    t.set_defaults(func=_token)

    ls = s.add_parser("list", help="who holds what now")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=_list)

    a = s.add_parser("audit", help="report of role holdings and recent access events")
    a.add_argument("--days", type=float, default=30, help="events of the last N days (default 30)")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(func=_audit)


def _grant(args) -> int:
    from ..security.rbac import AccessError

    acl = _acl(args)
    try:
        if args.duration is None:
            if not args.subject.startswith("staff:"):
                raise AccessError("permanent roles are for staff:<id>; use --for for tokens")
            acl.set_staff_role(args.subject[6:], args.role, actor=args.actor)
            print(f"{args.subject} is now {args.role}")
        else:
            g = acl.grant(
                args.subject, args.role, _duration(args.duration), args.actor, args.reason
            )
            print(
                f"grant {g['id']}: {args.subject} is {args.role} until {_fmt_ms(g['expires_ms'])}"
            )
    except (AccessError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    return 0


def _revoke(args) -> int:
    n = _acl(args).revoke(args.target)
    print(f"removed {n} holding(s) of {args.target}")
    return 0 if n else 1


def _token(args) -> int:
    from ..security.rbac import AccessError

    try:
        token = _acl(args).create_token(args.name, args.role)
    except AccessError as exc:
        print(f"error: {exc}")
        return 1
    print(token)
    print("store it now: only its hash is kept")
    return 0


def _list(args) -> int:
    rows = _acl(args).report()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for r in rows:
        print(
            f"{r['subject']:<24} {r['role']:<9} {r['source']:<28} expires {_fmt_ms(r['expires_ms'])}"
        )
    if not rows:
        print("nobody holds a role")
    return 0


def _audit(args) -> int:
    from ..security.audit_chain import AuditChain
    from ..security.crypto import Keyring

    home = _home(args)
    acl = _acl(args)
    holdings = acl.report()
    chain = AuditChain(home / "audit" / "admin.jsonl", keyring=Keyring.from_env())
    since = int(time.time() * 1000 - args.days * 86_400_000)
    events = [
        r
        for r in chain.records()
        if r.get("ts_ms", 0) >= since
        and str(r.get("operation", "")).startswith(("access.", "skills.", "config."))
        or r.get("result") == "denied"
    ]
    problems = [str(p) for p in chain.verify()]
    report = {"holdings": holdings, "events": events, "chain_problems": problems}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(f"# role holdings ({len(holdings)})")
        for r in holdings:
            print(
                f"  {r['subject']:<24} {r['role']:<9} {r['source']} expires {_fmt_ms(r['expires_ms'])}"
            )
        print(f"# access events in the last {args.days:g} days ({len(events)})")
        for e in events:
            print(
                f"  {_fmt_ms(e['ts_ms'])} {e.get('actor')} {e.get('operation')} {e.get('object')} {e.get('result')}"
            )
        print("# audit chain: " + ("intact" if not problems else f"{len(problems)} problem(s)"))
        for p in problems:
            print("  " + p)
    return 1 if problems else 0
