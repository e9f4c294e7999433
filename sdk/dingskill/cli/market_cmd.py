"""``dingskill market build|add|list|remove``: publish a signed skill market, and choose the
markets ``plugins search|install|upgrade`` read."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("market", help="build a signed skill market; configure markets")
    m.add_argument("--home", default=None, help="DINGSKILL_HOME (default ~/.dingskill)")
    ms = m.add_subparsers(dest="market", metavar="ACTION", required=True)
    b = ms.add_parser("build", help="write DIR/index.json (+ .sig) for the .skill files in DIR")
    b.add_argument("dir", help="folder of .skill packages to index")
    b.add_argument(
        "--key", required=True, help="ed25519 private key (PEM) or pkcs11:LABEL (in the token)"
    )
    b.add_argument("--name", default=None, help="market name shown to clients (default: DIR)")
    b.add_argument(
        "--expires-days",
        type=float,
        default=30.0,
        help="clients refuse the index after this many days (default 30): rebuild before",
    )
    b.set_defaults(func=_build)
    a = ms.add_parser("add", help="read skills from a market (file:// or http(s):// URL)")
    a.add_argument("name", help="a short name for the market")
    a.add_argument("url", help="the market's index URL")
    a.add_argument(
        "--allow-private-network",
        action="store_true",
        help="allow a market on loopback / intranet addresses (refused by default)",
    )
    a.set_defaults(func=_add)
    ls = ms.add_parser("list", help="the configured markets")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_list)
    rm = ms.add_parser("remove", help="stop reading a market")
    rm.add_argument("name", help="the market's short name")
    rm.set_defaults(func=_remove)


def _client(args):
    from ..skills.market import MarketClient
    from ..skills.packaging import SkillHome

    return MarketClient(SkillHome(args.home))


def _build(args) -> int:
    from ..skills.market import build_index
    from ..skills.packaging import PackageError

    try:
        path = build_index(args.dir, args.key, args.name, args.expires_days)
    except PackageError as exc:
        print(f"error: {exc}")
        return 1
    index = json.loads(path.read_text(encoding="utf-8"))
    n = sum(len(s["versions"]) for s in index["skills"].values())
    print(
        f"wrote {path} and {path.name}.sig: {len(index['skills'])} skill(s), {n} version(s); "
        f"index version {index['version']}, expires {index['expires']}"
    )
    return 0


def _add(args) -> int:
    from ..skills.market import MarketError

    try:
        src = _client(args).add(args.name, args.url, args.allow_private_network)
    except MarketError as exc:
        print(f"error: {exc}")
        return 1
    print(
        f"market {src.name} -> {src.url}"
        + (" (private network allowed)" if src.allow_private_network else "")
    )
    return 0


def _list(args) -> int:
    rows = [s.__dict__ for s in _client(args).sources()]
    if args.json:
        print(json.dumps(rows))
    elif not rows:
        print("no markets configured (dingskill market add NAME URL)")
    for r in rows:
        print(
            f"{r['name']:<20} {r['url']}"
            + ("  [private network]" if r["allow_private_network"] else "")
        )
    return 0


def _remove(args) -> int:
    from ..skills.market import MarketError

    try:
        _client(args).remove(args.name)
    except MarketError as exc:
        print(f"error: {exc}")
        return 1
    print(f"removed market {args.name}")
    return 0
