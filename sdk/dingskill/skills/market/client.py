"""``MarketClient``: the markets an operator configured (``DINGSKILL_HOME/markets.json``),
searched and installed from with the index signature and every package digest checked.

The threat model is The Update Framework's, as PEP 458 applies it to PyPI:

- a trusted key publishes only the skill-id namespaces it is bound to (``dingskill keys
  trust PUBKEY --namespace com.corp.*``); an index entry outside them is not listed;
- the package installed is the one the operator chose: its manifest id, version,
  permissions and outbound hosts, and its digest, must equal the index entry;
- the highest index version seen per market is remembered (``market-state.json``): an older
  index (a replay) or one past its ``expires`` is refused unless ``allow_downgrade``;
- a skill installed from one market is resolved, upgraded and reinstalled from that market
  only (no other market can shadow it), and a skill several markets list is ambiguous;
- an upgrade that adds permissions or outbound hosts names them and needs ``approve``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..packaging.home import SkillHome, _write_atomic
from ..packaging.home import in_namespaces as _in_namespaces
from .fetch import fetch_bytes
from .index import INDEX, INDEX_SIG, MarketError, expiry_seconds, parse_version, verify_index

__all__ = ["MarketClient", "MarketSource", "Resolved"]

MAX_INDEX_BYTES = 8 * 2**20


@dataclass(frozen=True)
class MarketSource:
    """A configured market: a name, its base URL (``file://`` or ``http(s)://``) and whether
    it may be on a private network (loopback, intranet)."""

    name: str
    url: str
    allow_private_network: bool = False

    def file_url(self, name: str) -> str:
        return self.url.rstrip("/") + "/" + name


@dataclass(frozen=True)
class Resolved:
    """One version of one skill in one market."""

    market: str
    skill_id: str
    version: str
    entry: dict
    skill: dict

    def summary(self) -> dict:
        return {
            "id": self.skill_id,
            "version": self.version,
            "market": self.market,
            "name": self.skill.get("name", ""),
            "description": self.skill.get("description", ""),
            "languages": self.entry.get("languages", []),
            "permissions": self.entry.get("permissions", []),
            "versions": list(self.skill.get("versions", {})),
            "changelog": self.entry.get("changelog", ""),
        }


def _spec(spec: str) -> tuple[str, str | None]:
    name, sep, version = spec.partition("==")
    if not name or (sep and not version):
        raise MarketError(f"{spec!r}: expected NAME or NAME==VERSION")
    return name.strip(), (version.strip() or None)


class MarketClient:
    """Search, resolve and install from the markets configured in a skill home."""

    def __init__(self, home: SkillHome | None = None, allow_downgrade: bool = False) -> None:
        self.home = home or SkillHome()
        self.allow_downgrade = allow_downgrade
        self.refused: list[str] = []  # index entries outside their key's namespaces

    # -- what this home remembers -------------------------------------------------------------
    @property
    def _state_path(self) -> Path:
        return self.home.home / "market-state.json"

    def state(self) -> dict:
        """``{"seen": {market: highest index version}, "origin": {skill id: market}}``."""
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except ValueError as exc:
            raise MarketError(f"{self._state_path}: not valid JSON ({exc})") from exc
        return {"seen": dict(data.get("seen") or {}), "origin": dict(data.get("origin") or {})}

    def _remember(self, **changes) -> None:
        with self.home._lock():
            st = self.state()
            for k, v in changes.items():
                st[k].update(v)
            _write_atomic(self._state_path, json.dumps(st, indent=2, sort_keys=True).encode())

    # -- configuration ------------------------------------------------------------------------
    @property
    def _path(self) -> Path:
        return self.home.home / "markets.json"

    def sources(self) -> list[MarketSource]:
        try:
            rows = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except ValueError as exc:
            raise MarketError(f"{self._path}: not valid JSON ({exc})") from exc
        return [MarketSource(**r) for r in rows]

    def add(self, name: str, url: str, allow_private_network: bool = False) -> MarketSource:
        """Configure a market (replacing one of the same name)."""
        scheme = urlsplit(url).scheme
        if scheme not in ("file", "http", "https"):
            raise MarketError(f"{url}: a market URL is file://, http:// or https://")
        if not name or "/" in name:
            raise MarketError(f"market name {name!r}: non-empty, no '/'")
        src = MarketSource(name, url, allow_private_network)
        rows = [s for s in self.sources() if s.name != name] + [src]
        self.home.home.mkdir(parents=True, exist_ok=True)
        _write_atomic(self._path, json.dumps([asdict(s) for s in rows], indent=2).encode())
        return src

    def remove(self, name: str) -> None:
        rows = self.sources()
        if not any(s.name == name for s in rows):
            raise MarketError(f"no market named {name!r} (dingskill market list)")
        _write_atomic(
            self._path, json.dumps([asdict(s) for s in rows if s.name != name], indent=2).encode()
        )

    # -- reading ------------------------------------------------------------------------------
    def index(self, src: MarketSource) -> dict:
        """The market's index, verified against the home's trusted keys."""
        body = fetch_bytes(src.file_url(INDEX), MAX_INDEX_BYTES, src.allow_private_network)
        sig = fetch_bytes(src.file_url(INDEX_SIG), 65536, src.allow_private_network)
        trusted = self.home.config()["trusted_keys"]
        if not trusted:
            raise MarketError(
                f"market {src.name}: no trusted keys; trust the market's signing key first "
                "(dingskill keys trust PUBKEY)"
            )
        where = f"market {src.name} ({src.url})"
        index = verify_index(body, sig, trusted, where)
        seen = int(self.state()["seen"].get(src.name, 0))
        if not self.allow_downgrade:
            if index["version"] < seen:
                raise MarketError(
                    f"{where}: index version {index['version']} is older than version {seen} "
                    "seen before (a replayed index?); nothing changed. If the market really "
                    "went back, pass --allow-downgrade"
                )
            if expiry_seconds(index) < time.time():
                raise MarketError(
                    f"{where}: index expired at {index['expires']} (a frozen or stale "
                    "market); ask its publisher to rebuild it, or pass --allow-downgrade"
                )
        if index["version"] > seen:
            self._remember(seen={src.name: index["version"]})
        spaces = self.home.config()["key_namespaces"].get(index["_signed_by"], [])
        for sid in list(index["skills"]):
            if not _in_namespaces(sid, spaces):
                del index["skills"][sid]
                self.refused.append(
                    f"{where}: {sid} is outside the namespaces of key {index['_signed_by']} "
                    f"({', '.join(spaces) or 'none'}; dingskill keys trust PUBKEY --namespace)"
                )
        return index

    def _all(self) -> list[Resolved]:
        sources = self.sources()
        if not sources:
            raise MarketError("no markets configured (dingskill market add NAME URL)")
        out = []
        for src in sources:
            for sid, skill in self.index(src)["skills"].items():
                for ver, entry in skill["versions"].items():
                    out.append(Resolved(src.name, sid, ver, entry, skill))
        return out

    def search(self, query: str = "") -> list[Resolved]:
        """The latest version of every skill whose id, name, description, languages or
        intents contain ``query`` (case-insensitive; empty lists all)."""
        q = query.lower().strip()
        latest: dict[str, Resolved] = {}
        for r in self._all():
            hay = " ".join(
                [
                    r.skill_id,
                    r.skill.get("name", ""),
                    r.skill.get("description", ""),
                    *r.entry.get("languages", []),
                    *r.entry.get("intents", []),
                ]
            ).lower()
            if q and q not in hay:
                continue
            best = latest.get(r.skill_id)
            if best is None or _newer(r.version, best.version):
                latest[r.skill_id] = r
        return [latest[k] for k in sorted(latest)]

    def resolve(self, spec: str) -> Resolved:
        """``NAME`` (latest release) or ``NAME==VERSION``; NAME is the skill id, or its last
        dotted part when that is unambiguous."""
        name, version = _spec(spec)
        rows = self._all()
        ids = sorted({r.skill_id for r in rows})
        matches = [i for i in ids if i == name] or [i for i in ids if i.rsplit(".", 1)[-1] == name]
        if not matches:
            raise MarketError(f"{name}: not in any configured market (dingskill plugins search)")
        if len(matches) > 1:
            raise MarketError(f"{name}: ambiguous ({', '.join(matches)}); give the full id")
        cands = [r for r in rows if r.skill_id == matches[0]]
        origin = self.state()["origin"].get(matches[0])
        if origin is not None:  # installed from a market: only that market may supply it
            cands = [r for r in cands if r.market == origin]
            if not cands:
                raise MarketError(
                    f"{matches[0]}: installed from market {origin}, which no longer lists it; "
                    "no other market may replace it"
                )
        markets = sorted({r.market for r in cands})
        if len(markets) > 1:
            raise MarketError(
                f"{matches[0]}: listed by several markets ({', '.join(markets)}); remove all "
                "but the one you trust for it (dingskill market remove NAME)"
            )
        if version is not None:
            exact = [r for r in cands if r.version == version]
            if not exact:
                have = ", ".join(sorted({r.version for r in cands}, key=parse_version))
                raise MarketError(f"{matches[0]}=={version}: no such version (available: {have})")
            return exact[0]
        releases = [r for r in cands if "-" not in r.version] or cands
        return max(releases, key=lambda r: parse_version(r.version))

    def download(self, r: Resolved, limit: int | None = None) -> bytes:
        """The package bytes, once their SHA-256 matches the (verified) index."""
        src = next(s for s in self.sources() if s.name == r.market)
        limit = limit or self.home.limits.max_package_bytes
        data = fetch_bytes(src.file_url(r.entry["file"]), limit, src.allow_private_network)
        digest = hashlib.sha256(data).hexdigest()
        if digest != r.entry["sha256"] or len(data) != r.entry.get("size", len(data)):
            raise MarketError(
                f"{r.entry['file']} from market {r.market}: SHA-256 {digest[:16]}… does not match "
                f"the signed index ({r.entry['sha256'][:16]}…); package altered, nothing installed"
            )
        return data

    # -- changes ------------------------------------------------------------------------------
    def install(
        self,
        spec: str,
        trust: bool = False,
        actor: str = "cli",
        allow_hosts=None,
        activate: bool = True,
        approve: bool = False,
    ):
        """Resolve, download, check and install ``spec``; returns the InstalledSkill.

        ``allow_hosts``: the outbound hosts the operator approves (see SkillHome.install);
        ``approve``: the operator saw and accepts permissions or hosts an upgrade adds."""
        r = self.resolve(spec)
        data = self.download(r)
        self._check_package(r, data, approve)
        self.home.home.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".market-", suffix=".skill", dir=self.home.home)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            info = self.home.install(
                tmp,
                version=r.version,
                trust=trust,
                actor=actor,
                allow_hosts=allow_hosts,
                activate=activate,
            )
        finally:
            os.unlink(tmp)
        self._remember(origin={r.skill_id: r.market})
        return info

    def _check_package(self, r: Resolved, data: bytes, approve: bool) -> None:
        """The package is the index entry the operator chose, and an upgrade adds no
        permission or host the operator has not approved."""
        from ..manifest import parse_manifest
        from ..packaging.verify import read_archive

        members = read_archive(data, self.home.limits)
        try:
            m = parse_manifest(members["skill.yaml"].decode("utf-8"), r.entry["file"])
        except (KeyError, UnicodeDecodeError) as exc:
            raise MarketError(f"{r.entry['file']}: no readable skill.yaml ({exc})") from None
        where = f"{r.entry['file']} from market {r.market}"
        for field_, got, want in (
            ("id", m.id, r.skill_id),
            ("version", m.version, r.version),
            ("permissions", sorted(m.permissions), sorted(r.entry.get("permissions", []))),
            ("outbound", sorted(m.outbound), sorted(r.entry.get("outbound", m.outbound))),
        ):
            if got != want:
                raise MarketError(
                    f"{where}: its manifest {field_} {got} differs from the signed index entry "
                    f"({want}); nothing installed"
                )
        if approve or r.skill_id not in {s.id for s in self.home.installed()}:
            return
        old = self.home._info(r.skill_id)
        try:
            old_m = parse_manifest(
                (Path(old.path) / "skill.yaml").read_text(encoding="utf-8"), str(old.path)
            )
            had_perms, had_hosts = set(old_m.permissions), set(old_m.outbound)
        except (OSError, ValueError):
            had_perms, had_hosts = set(), set()
        had_hosts |= set(old.approved_hosts or [])
        new_perms = sorted(set(m.permissions) - had_perms)
        new_hosts = sorted(set(m.outbound) - had_hosts)
        if new_perms or new_hosts:
            added = [
                x
                for x in (
                    f"permissions {', '.join(new_perms)}" if new_perms else "",
                    f"outbound hosts {', '.join(new_hosts)}" if new_hosts else "",
                )
                if x
            ]
            raise MarketError(
                f"{r.skill_id} {r.version} asks for more than {old.version} had: "
                + "; ".join(added)
                + "; review them, then approve them (--approve)"
            )

    def upgrades(self) -> list[tuple[str, str, Resolved]]:
        """(skill id, installed version, newer release) for each installed skill a market
        offers a newer release of."""
        out = []
        for s in self.home.installed():
            try:
                r = self.resolve(s.id)
            except MarketError as exc:
                if "not in any configured market" in str(exc):
                    continue
                raise
            if _newer(r.version, s.version):
                out.append((s.id, s.version, r))
        return out

    def upgrade(
        self, trust: bool = False, actor: str = "cli", approve: bool = False
    ) -> list[tuple[str, str, str]]:
        """Install every available upgrade; returns (id, from, to) for each."""
        done = []
        for sid, cur, r in self.upgrades():
            approved = self.home._info(sid).approved_hosts or []  # a new host needs approval
            if approve:  # the operator saw what the upgrade adds and accepts it
                approved = sorted(set(approved) | set(r.entry.get("outbound", [])))
            self.install(
                f"{sid}=={r.version}",
                trust=trust,
                actor=actor,
                allow_hosts=approved,
                approve=approve,
            )
            done.append((sid, cur, r.version))
        return done


def _newer(a: str, b: str) -> bool:
    try:
        return parse_version(a) > parse_version(b)
    except MarketError:
        return False
