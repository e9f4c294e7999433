"""``index.json`` (+ ``index.json.sig``): what a market offers, signed as one document.

Layout of a market folder (served as it is by any static host)::

    index.json          {"format": "dingskill-market-1", "skills": {id: {..., "versions": {...}}}}
    index.json.sig      {"algorithm": "ed25519", "key_id": ..., "signature": ...} over index.json
    <id>-<version>.skill

Per version the index records the package's file name, SHA-256 and size, the languages,
permissions, outbound hosts, intents and changelog, and the package's own signing key (if
signed). The index itself carries a ``version`` (it only grows) and an ``expires`` time, so a
client can refuse a replayed older index or one frozen past its expiry (The Update
Framework's rollback and freeze attacks). A client trusts nothing in the index before its
signature verifies with a key it trusts, and no package before its SHA-256 matches the index.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

from ..packaging.archive import SIGNATURE
from ..packaging.errors import PackageError, SignatureError
from ..packaging.signing import load_signer, sign_bytes, verify_body
from ..packaging.verify import read_archive, verify_members

__all__ = [
    "expiry_seconds",
    "FORMAT",
    "INDEX",
    "INDEX_SIG",
    "MarketError",
    "build_index",
    "parse_version",
    "verify_index",
]

FORMAT = "dingskill-market-1"
INDEX = "index.json"
INDEX_SIG = "index.json.sig"
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


class MarketError(PackageError):
    """A market, its index or one of its packages is refused; the message says which and why."""


def parse_version(version: str) -> tuple:
    """A sort key for a semantic version (a pre-release sorts before its release)."""
    m = _SEMVER.match(version)
    if not m:
        raise MarketError(f"version {version!r} is not a semantic version X.Y.Z")
    major, minor, patch, pre = m.groups()
    pre_key = (
        (1,)
        if pre is None
        else (0, *((0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".")))
    )
    return (int(major), int(minor), int(patch), pre_key)


def _changelog_entry(changelog: str, version: str) -> str:
    """The CHANGELOG.md section of ``version`` (or the whole text, trimmed, if none matches)."""
    lines, out, inside = changelog.splitlines(), [], False
    for line in lines:
        if line.startswith("## "):
            if inside:
                break
            inside = version in line
            continue
        if inside:
            out.append(line)
    text = "\n".join(out).strip() or changelog.strip()
    return text[:2000]


def _entry(path: Path) -> tuple[str, str, dict, dict]:
    data = path.read_bytes()
    members = read_archive(data)
    pkg = verify_members(members, {}, require_signature=False, trust=True)
    m = pkg.manifest
    signer = None
    if SIGNATURE in members:
        try:
            signer = json.loads(members[SIGNATURE]).get("key_id")
        except ValueError:
            signer = None
    version = {
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "languages": list(m.languages),
        "permissions": list(m.permissions),
        "outbound": sorted(m.outbound),
        "intents": sorted(m.intents),
        "handlers": pkg.has_handlers,
        "min_dingskill": m.min_dingskill,
        "package_key_id": signer,
        "changelog": _changelog_entry(
            members.get("CHANGELOG.md", b"").decode("utf-8", "replace"), m.version
        ),
    }
    skill = {"name": m.name, "description": m.description, "author": m.author}
    return m.id, m.version, skill, version


def build_index(directory, key, name: str | None = None, expires_days: float = 30.0) -> Path:
    """Read every ``*.skill`` in ``directory`` (verified as an install would), write
    ``index.json`` and its signature ``index.json.sig`` made with ``key`` (a PEM key file or
    ``pkcs11:LABEL``); returns the index path. The index's ``version`` is one more than the
    index it replaces (at least the current Unix time); it expires after ``expires_days``."""
    if not 0 < expires_days <= 3650:
        raise MarketError(f"expires_days: {expires_days} is not in (0, 3650]")
    root = Path(directory)
    packages = sorted(root.glob("*.skill"))
    if not packages:
        raise MarketError(f"{root}: no .skill packages to index (dingskill export writes them)")
    signer = load_signer(key)  # fail before reading anything if the key is unusable
    skills: dict[str, dict] = {}
    for path in packages:
        try:
            sid, ver, info, entry = _entry(path)
        except PackageError as exc:
            raise MarketError(f"{path.name}: {exc}") from exc
        s = skills.setdefault(sid, {**info, "versions": {}})
        if ver in s["versions"]:
            raise MarketError(
                f"{path.name}: {sid} {ver} is also in {s['versions'][ver]['file']}; one file per version"
            )
        s["versions"][ver] = entry
    for s in skills.values():
        order = sorted(s["versions"], key=parse_version)
        s["versions"] = {v: s["versions"][v] for v in order}
        releases = [v for v in order if "-" not in v.split("+")[0]]
        s["latest"] = (releases or order)[-1]
        latest = s["versions"][s["latest"]]
        s["languages"], s["permissions"] = latest["languages"], latest["permissions"]
    previous = 0
    try:
        previous = int(json.loads((root / INDEX).read_text(encoding="utf-8")).get("version", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        previous = 0
    now = time.time()
    index = {
        "format": FORMAT,
        "name": name or root.resolve().name,
        "version": max(previous + 1, int(now)),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + expires_days * 86400)),
        "skills": dict(sorted(skills.items())),
    }
    body = (json.dumps(index, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    sig = sign_bytes(body, signer)
    (root / INDEX).write_bytes(body)
    (root / INDEX_SIG).write_text(json.dumps(sig, indent=2, sort_keys=True) + "\n")
    return root / INDEX


def expiry_seconds(index: dict) -> float:
    """The index's ``expires`` as a Unix time."""
    import calendar

    return float(calendar.timegm(time.strptime(index["expires"], "%Y-%m-%dT%H:%M:%SZ")))


def verify_index(body: bytes, signature: bytes, trusted: dict[str, str], where: str) -> dict:
    """The index, once its signature verifies with one of the ``trusted`` keys and its shape
    is right; raises :class:`MarketError` naming ``where`` otherwise. The key that signed it
    is returned in ``index["_signed_by"]``."""
    try:
        sig = json.loads(signature)
        if not isinstance(sig, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise MarketError(f"{where}/{INDEX_SIG}: malformed ({exc})") from exc
    try:
        signed_by = verify_body(body, sig, trusted, f"{where}/{INDEX_SIG}")
    except SignatureError as exc:
        raise MarketError(str(exc)) from exc
    try:
        index = json.loads(body)
    except ValueError as exc:
        raise MarketError(f"{where}/{INDEX}: not JSON ({exc})") from exc
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise MarketError(f"{where}/{INDEX}: format is not {FORMAT}")
    if not isinstance(index.get("skills"), dict):
        raise MarketError(f"{where}/{INDEX}: field 'skills' must be an object")
    version = index.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise MarketError(
            f"{where}/{INDEX}: field 'version' (a growing integer) is missing or not one; "
            "rebuild the index with `dingskill market build`"
        )
    try:
        expiry_seconds(index)
    except (KeyError, TypeError, ValueError):
        raise MarketError(
            f"{where}/{INDEX}: field 'expires' (YYYY-MM-DDTHH:MM:SSZ) is missing or malformed; "
            "rebuild the index with `dingskill market build`"
        ) from None
    index["_signed_by"] = signed_by
    for sid, s in index["skills"].items():
        versions = s.get("versions") if isinstance(s, dict) else None
        if not isinstance(versions, dict) or not versions:
            raise MarketError(f"{where}/{INDEX}: skills.{sid}.versions must be a non-empty object")
        for ver, v in versions.items():
            ok = (
                isinstance(v, dict)
                and isinstance(v.get("file"), str)
                and re.fullmatch(r"[A-Za-z0-9._-]+\.skill", v["file"]) is not None
                and isinstance(v.get("sha256"), str)
                and len(v["sha256"]) == 64
            )
            if not ok:
                raise MarketError(
                    f"{where}/{INDEX}: skills.{sid}.versions.{ver}: needs 'file' (a plain "
                    "*.skill name) and 'sha256'"
                )
    return index
