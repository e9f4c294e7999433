"""``MarketClient``: the markets an operator configured (``DINGSKILL_HOME/markets.json``),
searched and installed from with the index signature and every package digest checked."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..packaging.home import SkillHome, _write_atomic
from .fetch import fetch_bytes
from .index import INDEX, INDEX_SIG, MarketError, parse_version, verify_index

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

    def __init__(self, home: SkillHome | None = None) -> None:
        self.home = home or SkillHome()

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
        return verify_index(body, sig, trusted, f"market {src.name} ({src.url})")

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
    ):
        """Resolve, download, check and install ``spec``; returns the InstalledSkill.

        ``allow_hosts``: the outbound hosts the operator approves (see SkillHome.install)."""
        r = self.resolve(spec)
        data = self.download(r)
        self.home.home.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".market-", suffix=".skill", dir=self.home.home)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return self.home.install(
                tmp,
                version=r.version,
                trust=trust,
                actor=actor,
                allow_hosts=allow_hosts,
                activate=activate,
            )
        finally:
            os.unlink(tmp)

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

    def upgrade(self, trust: bool = False, actor: str = "cli") -> list[tuple[str, str, str]]:
        """Install every available upgrade; returns (id, from, to) for each."""
        done = []
        for sid, cur, r in self.upgrades():
            approved = self.home._info(sid).approved_hosts  # a new host needs a new approval
            self.install(f"{sid}=={r.version}", trust=trust, actor=actor, allow_hosts=approved)
            done.append((sid, cur, r.version))
        return done


def _newer(a: str, b: str) -> bool:
    try:
        return parse_version(a) > parse_version(b)
    except MarketError:
        return False
