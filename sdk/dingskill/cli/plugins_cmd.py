"""``dingskill export``, ``dingskill keys`` and ``dingskill plugins``: packages for operators."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="train a skill folder and write DIST/<id>-<version>.skill")
    e.add_argument("skill", help="a skill source folder (holds skill.yaml)")
    e.add_argument("-o", "--output", default="dist", help="folder for the package (default dist)")
    e.add_argument(
        "--sign",
        default=None,
        metavar="KEY",
        help="ed25519 private key (PEM file), or pkcs11:LABEL for a key in the PKCS#11 token",
    )
    e.set_defaults(func=_export)

    k = sub.add_parser("keys", help="signing keys and at-rest encryption keys")
    ks = k.add_subparsers(dest="keys", metavar="ACTION", required=True)
    g = ks.add_parser("generate", help="create an ed25519 signing key pair")
    g.add_argument("-o", "--output", default=".", help="folder for NAME.key and NAME.pub")
    g.add_argument("--name", default="dingskill", help="file name stem (default dingskill)")
    g.add_argument(
        "--pkcs11",
        default=None,
        metavar="LABEL",
        help="create the key in the PKCS#11 token (DINGSKILL_HSM_MODULE/_TOKEN/_PIN) instead "
        "of a file; only the public key is written; sign with --sign pkcs11:LABEL",
    )
    g.set_defaults(func=_keys_generate)
    kek = ks.add_parser("hsm-kek", help="create an AES-256 key-encryption key in the PKCS#11 token")
    kek.add_argument("label", help="label of the key in the token")
    kek.set_defaults(func=_keys_kek)
    w = ks.add_parser("wrap", help="wrap an at-rest key file with the token's key-encryption key")
    w.add_argument("key_file", help="JSON key file (as keys rotate writes)")
    w.add_argument(
        "--kek", required=True, metavar="LABEL", help="label of the token's key-encryption key"
    )
    w.add_argument("-o", "--output", required=True, help="the wrapped key file to write")
    w.set_defaults(func=_keys_wrap)
    t = ks.add_parser("trust", help="trust a public key for signed packages")
    t.add_argument("pubkey", help="a .pub file or the base64 key")
    t.add_argument("--home", default=None, help="DINGSKILL_HOME (default ~/.dingskill)")
    t.add_argument("--require", action="store_true", help="also require signatures from now on")
    t.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="PREFIX.*",
        help="skill ids this key may publish in a market index (com.corp.*; repeatable); "
        "without one the key verifies package signatures only",
    )
    t.set_defaults(func=_keys_trust)
    r = ks.add_parser("rotate", help="add a new at-rest data key and re-encrypt stored data")
    r.add_argument("--key-file", required=True, help="JSON key file (created if missing)")
    r.add_argument("--config", default=None, help="runtime config naming the storage to re-encrypt")
    r.add_argument("--home", default=None, help="DINGSKILL_HOME (default ~/.dingskill)")
    r.set_defaults(func=_keys_rotate)

    p = sub.add_parser("plugins", help="install, list, roll back and remove skill packages")
    p.add_argument("--home", default=None, help="DINGSKILL_HOME (default ~/.dingskill)")
    ps = p.add_subparsers(dest="plugins", metavar="ACTION", required=True)
    i = ps.add_parser(
        "install",
        help="install or upgrade a package: NAME[==VERSION] from the markets, or --source PATH|URL",
    )
    i.add_argument("spec", nargs="?", help="skill id (or its last part) [==VERSION] in a market")
    i.add_argument("--source", default=None, help="a package file or http(s) URL instead")
    i.add_argument("--version", default=None, help="the version the package must have")
    i.add_argument(
        "--trust", action="store_true", help="allow the package's Python handlers to run"
    )
    i.add_argument(
        "--allow-hosts",
        default="",
        metavar="HOST,...",
        help="approve the outbound hosts the package declares (shown when refused)",
    )
    i.add_argument(
        "--stage",
        action="store_true",
        help="install beside the current version without making it live "
        "(then: dingskill release set / switch)",
    )
    _market_flags(i)
    i.set_defaults(func=_install)
    se = ps.add_parser("search", help="search the configured markets")
    se.add_argument("query", nargs="?", default="", help="words to look for (default: list all)")
    se.add_argument("--json", action="store_true", help="print JSON")
    se.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="accept an index older than one seen before, or past its expiry",
    )
    se.set_defaults(func=_search)
    up = ps.add_parser("upgrade", help="install newer releases of installed skills from markets")
    up.add_argument("--dry-run", action="store_true", help="only list what would be upgraded")
    up.add_argument(
        "--trust", action="store_true", help="allow the packages' Python handlers to run"
    )
    _market_flags(up)
    up.set_defaults(func=_upgrade)
    ls = ps.add_parser("list", help="installed skills")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_list)
    rm = ps.add_parser("remove", help="remove a skill and all its versions")
    rm.add_argument("id", help="skill id, e.g. com.dingskill.hr-assistant")
    rm.set_defaults(func=_remove)
    rb = ps.add_parser("rollback", help="back to the previous version")
    rb.add_argument("id", help="skill id, e.g. com.dingskill.hr-assistant")
    rb.set_defaults(func=_rollback)
    v = ps.add_parser("verify", help="re-check every installed file against its RECORD")
    v.set_defaults(func=_verify)


def _market_flags(p) -> None:
    p.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="accept a market index older than one seen before, or past its expiry",
    )
    p.add_argument(
        "--approve",
        action="store_true",
        help="accept the permissions and outbound hosts an upgrade adds (shown when refused)",
    )


def _home(args):
    from ..skills.packaging import SkillHome

    return SkillHome(getattr(args, "home", None))


def _export(args) -> int:
    from ..skills import Skill, SkillError
    from ..skills.packaging import PackageError

    try:
        skill = Skill.load(args.skill)
        out = skill.export(args.output, key=args.sign)
    except (SkillError, PackageError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"wrote {out} ({out.stat().st_size} bytes{', signed' if args.sign else ''})")
    return 0


def _keys_generate(args) -> int:
    from ..skills.packaging import SignatureError, generate_keys
    from ..skills.packaging.signing import generate_token_key

    if args.pkcs11:
        try:
            pub, kid = generate_token_key(args.pkcs11, args.output, args.name)
        except SignatureError as exc:
            print(f"error: {exc}")
            return 1
        print(f"key {args.pkcs11!r} created in the token; public key {pub}, key id {kid}")
        return 0
    key, pub, kid = generate_keys(args.output, args.name)
    print(f"private key {key} (keep it secret), public key {pub}, key id {kid}")
    return 0


def _keys_trust(args) -> int:
    from ..skills.packaging import PackageError

    value = Path(args.pubkey).read_text().strip() if Path(args.pubkey).is_file() else args.pubkey
    home = _home(args)
    try:
        kid = home.trust_key(value, args.namespace or None)
        if args.require:
            home.set_config(require_signature=True)
    except PackageError as exc:
        print(f"error: {exc}")
        return 1
    spaces = home.config()["key_namespaces"].get(kid)
    print(
        f"trusted key {kid}"
        + (" (signatures now required)" if args.require else "")
        + (
            f"; may publish {', '.join(spaces)} in markets"
            if spaces
            else "; package signatures only (a market it signs lists nothing: --namespace)"
        )
    )
    return 0


def _keys_kek(args) -> int:
    from ..security.hsm import HsmConfig, HsmError, generate_data_kek

    try:
        generate_data_kek(HsmConfig.from_env(), args.label)
    except HsmError as exc:
        print(f"error: {exc}")
        return 1
    print(f"AES-256 key-encryption key {args.label!r} created in the token")
    return 0


def _keys_wrap(args) -> int:
    from ..security.crypto import CryptoError, Keyring
    from ..security.hsm import HsmConfig, HsmError, wrap_keyring

    try:
        out = wrap_keyring(
            Keyring.from_file(args.key_file), HsmConfig.from_env(), args.kek, args.output
        )
    except (CryptoError, HsmError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"wrote {out}: data keys wrapped by {args.kek!r}; set DINGSKILL_KEY_FILE={out.resolve()}")
    return 0


def _keys_rotate(args) -> int:
    from ..security.crypto import CryptoError, Keyring

    path = Path(args.key_file)
    try:
        ring = Keyring.from_file(path) if path.exists() else None
    except CryptoError as exc:
        print(f"error: {exc}")
        return 1
    if ring is None:
        import os

        ring = Keyring({"k1": os.urandom(32)}, "k1")
        ring.to_file(path)
        print(f"created {path} with key k1")
        return 0
    new = ring.rotated()
    from ..runtime.rotate import reencrypt_all

    count = reencrypt_all(args.config, new, home=args.home)
    new.to_file(path)
    print(
        f"active key is now {new.active}; re-encrypted {count} stored value(s); old keys kept for reading"
    )
    return 0


def _install(args) -> int:
    from ..skills.market import MarketClient
    from ..skills.packaging import PackageError

    if bool(args.spec) == bool(args.source):
        print("error: give either NAME[==VERSION] (from a market) or --source PATH|URL")
        return 2
    hosts = [h.strip() for h in args.allow_hosts.split(",") if h.strip()]
    try:
        if args.spec:
            info = MarketClient(_home(args), args.allow_downgrade).install(
                args.spec,
                trust=args.trust,
                allow_hosts=hosts,
                activate=not args.stage,
                approve=args.approve,
            )
        else:
            info = _home(args).install(
                args.source,
                version=args.version,
                trust=args.trust,
                allow_hosts=hosts,
                activate=not args.stage,
            )
    except PackageError as exc:
        print(f"error: refused {args.spec or args.source}: {exc}")
        return 1
    if args.stage:
        print(
            f"staged {args.spec or args.source} beside {info.id} {info.version} (still live); "
            "choose who sees it with: dingskill release set"
        )
        return 0
    print(
        f"installed {info.id} {info.version} ({info.signature})"
        + (f"; outbound hosts: {', '.join(info.approved_hosts)}" if info.approved_hosts else "")
        + (f"; previous: {', '.join(info.previous)}" if info.previous else "")
    )
    return 0


def _search(args) -> int:
    from ..skills.market import MarketClient, MarketError

    try:
        client = MarketClient(_home(args), args.allow_downgrade)
        rows = [r.summary() for r in client.search(args.query)]
    except MarketError as exc:
        print(f"error: {exc}")
        return 1
    for note in client.refused:  # entries a market's key may not publish
        print(f"warning: not listed: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print(f"no skill matches {args.query!r}")
    for r in rows:
        print(
            f"{r['id']:<36} {r['version']:<10} [{','.join(r['languages'])}] {r['name']} "
            f"— {r['description']} (market {r['market']}; versions {', '.join(r['versions'])})"
        )
    return 0


def _upgrade(args) -> int:
    from ..skills.market import MarketClient
    from ..skills.packaging import PackageError

    client = MarketClient(_home(args), args.allow_downgrade)
    try:
        if args.dry_run:
            rows = [(sid, cur, r.version) for sid, cur, r in client.upgrades()]
        else:
            rows = client.upgrade(trust=args.trust, approve=args.approve)
    except PackageError as exc:
        print(f"error: {exc}")
        return 1
    for sid, cur, new in rows:
        print(f"{sid}: {cur} -> {new}" + (" (dry run)" if args.dry_run else ""))
    if not rows:
        print("everything is up to date")
    return 0


def _list(args) -> int:
    rows = [s.to_dict() for s in _home(args).installed()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("no skills installed")
    for r in rows:
        prev = ", ".join(r["previous"]) or "-"
        print(
            f"{r['id']:<36} {r['version']:<10} {r['installed_at']:<26} {r['signature']:<28} previous: {prev}"
        )
    return 0


def _remove(args) -> int:
    from ..skills.packaging import PackageError

    try:
        _home(args).remove(args.id)
    except PackageError as exc:
        print(f"error: {exc}")
        return 1
    print(f"removed {args.id}")
    return 0


def _rollback(args) -> int:
    from ..skills.packaging import PackageError

    try:
        info = _home(args).rollback(args.id)
    except PackageError as exc:
        print(f"error: {exc}")
        return 1
    print(f"{info.id} is back at {info.version}")
    return 0


def _verify(args) -> int:
    problems = _home(args).verify()
    for p in problems:
        print(p)
    print(
        "all installed files match their RECORD" if not problems else f"{len(problems)} problem(s)"
    )
    return 1 if problems else 0
