"""``SkillHome``: installed skill packages under ``DINGSKILL_HOME`` (default ``~/.dingskill``).

Layout::

    skills/<id>/<version>/    an unpacked, verified package (with its RECORD)
    skills/<id>/current       the active version (written atomically)
    skills/<id>/history.json  install / rollback events, oldest first
    state.json                {"generation": n}, bumped on every change
    config.json               {"require_signature": false, "trusted_keys": {key_id: base64}}
    lock                      held while changing anything

Installs verify everything first, unpack into a temporary folder inside the home, fsync the
files, then rename it into place; a refused package leaves the installed set untouched. A
package whose HTTP actions call hosts (``outbound:``) installs only when the operator approves
every declared host (``allow_hosts``); the approval is recorded and the runtime lets the skill
call only declared ∩ approved hosts. Leftovers of a killed install (``.install-*``,
``.remove-*``, ``*.tmp``) are removed by :meth:`SkillHome.clean_stale`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ...download import read_capped
from ..outbound import normalize_host
from .archive import RECORD, SIGNATURE, parse_record, record_digest
from .errors import PackageError, PolicyError
from .signing import key_id
from .verify import Limits, VerifiedPackage, read_archive, verify_members

__all__ = ["SkillHome", "InstalledSkill", "default_home"]

DOWNLOAD_TIMEOUT_S = 30.0


def default_home() -> Path:
    return Path(os.environ.get("DINGSKILL_HOME") or Path.home() / ".dingskill")


@dataclass
class InstalledSkill:
    id: str
    version: str
    path: Path
    installed_at: str
    signature: str
    trusted: bool
    previous: list[str]
    approved_hosts: list[str] | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "version": self.version,
            "path": str(self.path),
            "installed_at": self.installed_at,
            "signature": self.signature,
            "trusted": self.trusted,
            "previous": self.previous,
            "approved_hosts": self.approved_hosts or [],
        }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_file(tmp, data)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def declared_hosts(manifest) -> list[str]:
    """The hosts a package's HTTP actions may call (empty without ``http.outbound``)."""
    if "http.outbound" not in (manifest.permissions or []):
        return []
    return [normalize_host(h) for h in manifest.outbound or []]


def in_namespaces(skill_id: str, spaces: list[str]) -> bool:
    """Is ``skill_id`` within one of ``spaces`` (``*``, ``com.corp.*`` or an exact id)?"""
    for ns in spaces:
        if ns == "*" or ns == skill_id:
            return True
        if ns.endswith(".*") and skill_id.startswith(ns[:-1]):
            return True
    return False


class SkillHome:
    """Install, upgrade, roll back, remove and verify skill packages."""

    def __init__(self, home=None, limits: Limits | None = None) -> None:
        self.home = Path(home) if home else default_home()
        self.limits = limits or Limits()

    # -- files ------------------------------------------------------------------------------
    @property
    def skills_dir(self) -> Path:
        return self.home / "skills"

    def config(self) -> dict:
        try:
            cfg = json.loads((self.home / "config.json").read_text())
        except FileNotFoundError:
            cfg = {}
        except ValueError as exc:
            raise PackageError(f"{self.home / 'config.json'}: not valid JSON ({exc})") from exc
        return {
            "require_signature": bool(cfg.get("require_signature", False)),
            "trusted_keys": dict(cfg.get("trusted_keys", {})),
            "key_namespaces": {k: list(v) for k, v in (cfg.get("key_namespaces") or {}).items()},
        }

    def set_config(self, **changes) -> dict:
        with self._lock():
            cfg = self.config()
            cfg.update(changes)
            self.home.mkdir(parents=True, exist_ok=True)
            _write_atomic(
                self.home / "config.json", json.dumps(cfg, indent=2, sort_keys=True).encode()
            )
        return cfg

    def trust_key(self, public_b64: str, namespaces: list[str] | None = None) -> str:
        """Trust an ed25519 public key (base64); ``namespaces`` (``com.corp.*``, or one exact
        skill id) are the skill ids it may publish in a market index (none: it verifies
        package signatures only, and a market it signs lists nothing)."""
        import base64
        import re

        try:
            raw = base64.b64decode(public_b64.strip(), validate=True)
        except ValueError as exc:
            raise PackageError("public key: not base64") from exc
        if len(raw) != 32:
            raise PackageError(f"public key: ed25519 keys are 32 bytes, got {len(raw)}")
        pattern = re.compile(r"^([a-z][a-z0-9-]*)(\.[a-z0-9][a-z0-9-]*)*(\.\*)?$")
        for ns in namespaces or []:
            if ns != "*" and not pattern.match(ns):
                raise PackageError(
                    f"namespace {ns!r}: a skill id (com.corp.hr) or a prefix ending in .* "
                    "(com.corp.*)"
                )
        kid = key_id(raw)
        cfg = self.config()
        keys, spaces = cfg["trusted_keys"], cfg["key_namespaces"]
        keys[kid] = public_b64.strip()
        if namespaces:
            spaces[kid] = sorted(set(spaces.get(kid, [])) | set(namespaces))
        self.set_config(trusted_keys=keys, key_namespaces=spaces)
        return kid

    @contextlib.contextmanager
    def _lock(self):
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def generation(self) -> int:
        try:
            return int(json.loads((self.home / "state.json").read_text())["generation"])
        except (FileNotFoundError, ValueError, KeyError):
            return 0

    def _bump(self) -> int:
        gen = self.generation() + 1
        _write_atomic(self.home / "state.json", json.dumps({"generation": gen}).encode())
        return gen

    def _history(self, skill_id: str) -> list[dict]:
        try:
            return json.loads((self.skills_dir / skill_id / "history.json").read_text())
        except FileNotFoundError:
            return []

    def _current(self, skill_id: str) -> str | None:
        try:
            return (self.skills_dir / skill_id / "current").read_text().strip() or None
        except FileNotFoundError:
            return None

    # -- reading the source ----------------------------------------------------------------------
    def _fetch(self, source, remote=None) -> bytes:
        """The package bytes. ``remote``: an OutboundPolicy for requests from the admin API
        (no redirects, no private addresses unless allowed, and a local path's failure never
        says whether the file exists)."""
        src = str(source)
        if src.startswith(("http://", "https://")):
            from ... import http_sync

            limit = self.limits.max_package_bytes
            connect_to = None
            if remote is not None:
                from ..outbound import OutboundRefused, resolve_checked

                def connect_to(host: str, port: int) -> str:
                    # the connection goes to the address checked here, by name (Host, TLS)
                    try:
                        return resolve_checked(host, port, remote)
                    except OutboundRefused as exc:
                        raise PackageError(f"download refused: {exc}") from None

            try:
                with http_sync.stream(
                    "GET",
                    src,
                    timeout=DOWNLOAD_TIMEOUT_S,
                    follow_redirects=remote is None,
                    trust_env=False,
                    connect_to=connect_to,
                ) as resp:
                    if resp.is_redirect:
                        raise PackageError(
                            f"{src}: download answered a redirect; redirects are not followed"
                        )
                    if resp.status != 200:
                        raise PackageError(f"{src}: download answered HTTP {resp.status}")
                    return read_capped(
                        resp,
                        limit,
                        lambda size: PackageError(
                            f"{src}: {size} bytes, limit {limit}"
                            if size
                            else f"{src}: download larger than the limit of {limit} bytes"
                        ),
                    )
            except http_sync.HttpError as exc:
                raise PackageError(f"{src}: download failed ({exc})") from exc
        path = Path(src)
        if remote is not None:
            data, ok = b"", False
            try:
                if path.is_file():
                    with open(path, "rb") as fh:
                        data = fh.read(self.limits.max_package_bytes + 1)
                    ok = data[:4] == b"PK\x03\x04"
            except OSError:
                ok = False
            if not ok or len(data) > self.limits.max_package_bytes:
                raise PackageError(
                    f"{src}: not a skill package this server can read (missing, unreadable, "
                    "too large or not a zip)"
                )
            return data
        if not path.is_file():
            raise PackageError(f"{path}: no such package file")
        if path.stat().st_size > self.limits.max_package_bytes:
            raise PackageError(
                f"{path}: {path.stat().st_size} bytes, limit {self.limits.max_package_bytes}"
            )
        return path.read_bytes()

    def check(
        self,
        source,
        version: str | None = None,
        trust: bool = False,
        allow_hosts: list[str] | None = None,
        remote=None,
    ) -> VerifiedPackage:
        """Everything ``install`` verifies, without changing the home.

        ``allow_hosts``: the outbound hosts the operator approves; None checks nothing about
        them (``plugins check``), a list must cover every host the package declares."""
        cfg = self.config()
        members = read_archive(self._fetch(source, remote), self.limits)
        pkg = verify_members(members, cfg["trusted_keys"], cfg["require_signature"], trust)
        pkg.files = members  # keep RECORD and SIGNATURE in the installed copy
        kid = pkg.signature.key_id if pkg.signature.trusted else None
        spaces = cfg["key_namespaces"].get(kid) if kid else None
        if spaces and not in_namespaces(pkg.manifest.id, spaces):
            # a key bound to namespaces vouches for nothing outside them
            raise PackageError(
                f"{pkg.manifest.id}: signed by key {kid}, which may publish only "
                f"{', '.join(spaces)}; nothing installed"
            )
        if version is not None and version != pkg.manifest.version:
            raise PackageError(
                f"--version {version} does not match the package's version {pkg.manifest.version}"
            )
        declared = declared_hosts(pkg.manifest)
        pkg.notes.append(f"outbound hosts: {', '.join(declared) or 'none'}")
        if allow_hosts is not None:
            approved = {normalize_host(h) for h in allow_hosts}
            missing = [h for h in declared if h not in approved]
            if missing:
                raise PolicyError(
                    f"{pkg.manifest.id} {pkg.manifest.version} calls outbound hosts "
                    f"{', '.join(declared)}; not approved: {', '.join(missing)} "
                    f"(review them, then install with --allow-hosts {','.join(declared)})"
                )
        return pkg

    # -- changes -----------------------------------------------------------------------------------
    def install(
        self,
        source,
        version: str | None = None,
        trust: bool = False,
        actor: str = "cli",
        allow_hosts: list[str] | None = None,
        remote=None,
        activate: bool = True,
    ) -> InstalledSkill:
        """Verify and install (or upgrade to) a package; the new version becomes current.

        ``allow_hosts``: the outbound hosts the operator approves (must cover the declared ones).
        ``activate=False``: install side by side, keeping the current version (staged release,
        see :mod:`dingskill.skills.release`); a first install always becomes current."""
        pkg = self.check(source, version, trust, allow_hosts or [], remote)
        declared = declared_hosts(pkg.manifest)
        sid, ver = pkg.manifest.id, pkg.manifest.version
        with self._lock():
            skill_dir = self.skills_dir / sid
            target = skill_dir / ver
            if target.exists():
                same = (target / RECORD).exists() and (target / RECORD).read_bytes() == pkg.files[
                    RECORD
                ]
                if not same:
                    raise PackageError(
                        f"{sid} {ver} is already installed with different content; bump the version"
                    )
            else:
                skill_dir.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=skill_dir))
                try:
                    for name, data in pkg.files.items():
                        dest = tmp / name
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        _write_file(dest, data)
                    for d in sorted({p.parent for p in tmp.rglob("*")}, reverse=True):
                        _fsync_dir(d)
                    os.rename(tmp, target)
                    _fsync_dir(skill_dir)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
            history = self._history(sid)
            history.append(
                {
                    "version": ver,
                    "action": "install",
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "signature": str(pkg.signature),
                    "trusted": trust or pkg.signature.trusted,
                    "actor": actor,
                    "outbound": declared,
                }
            )
            _write_atomic(skill_dir / "history.json", json.dumps(history, indent=2).encode())
            if activate or self._current(sid) is None:
                _write_atomic(skill_dir / "current", ver.encode())
            self._bump()
        return self._info(sid)

    def rollback(self, skill_id: str, actor: str = "cli") -> InstalledSkill:
        """Make the version installed before the current one active again."""
        with self._lock():
            cur = self._current(skill_id)
            if cur is None:
                raise PackageError(f"{skill_id} is not installed")
            order = self._versions(skill_id)
            i = order.index(cur) if cur in order else len(order)
            if i == 0:
                raise PackageError(f"{skill_id}: no version before {cur} to roll back to")
            prev = order[i - 1]
            history = self._history(skill_id)
            history.append(
                {
                    "version": prev,
                    "action": "rollback",
                    "from": cur,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "actor": actor,
                }
            )
            skill_dir = self.skills_dir / skill_id
            _write_atomic(skill_dir / "history.json", json.dumps(history, indent=2).encode())
            _write_atomic(skill_dir / "current", prev.encode())
            self._bump()
        return self._info(skill_id)

    def remove(self, skill_id: str) -> None:
        """Remove a skill with all its versions."""
        with self._lock():
            skill_dir = self.skills_dir / skill_id
            if not skill_dir.exists():
                raise PackageError(f"{skill_id} is not installed")
            trash = self.skills_dir / f".remove-{skill_id}-{os.getpid()}"
            os.rename(skill_dir, trash)
            shutil.rmtree(trash)
            self._bump()

    # -- reading -----------------------------------------------------------------------------------
    def _versions(self, skill_id: str) -> list[str]:
        seen: list[str] = []
        for ev in self._history(skill_id):
            if (
                ev["action"] == "install"
                and ev["version"] not in seen
                and (self.skills_dir / skill_id / ev["version"]).is_dir()
            ):
                seen.append(ev["version"])
        return seen

    def _info(self, skill_id: str) -> InstalledSkill:
        cur = self._current(skill_id)
        history = self._history(skill_id)
        inst = next(
            (e for e in reversed(history) if e["action"] == "install" and e["version"] == cur), {}
        )
        order = self._versions(skill_id)
        return InstalledSkill(
            skill_id,
            cur,
            self.skills_dir / skill_id / cur,
            inst.get("at", ""),
            inst.get("signature", "unknown"),
            bool(inst.get("trusted")),
            [v for v in order if v != cur],
            list(inst.get("outbound", [])),
        )

    def installed(self) -> list[InstalledSkill]:
        if not self.skills_dir.is_dir():
            return []
        return [
            self._info(p.name)
            for p in sorted(self.skills_dir.iterdir())
            if p.is_dir() and not p.name.startswith(".") and self._current(p.name)
        ]

    def active_paths(self) -> list[Path]:
        return [s.path for s in self.installed()]

    def load_skills(self) -> list:
        """The active skills, loaded (handlers allowed where install approved them)."""
        from ..skill import Skill

        out = []
        for s in self.installed():
            skill = Skill.load(s.path, trust=s.trusted)
            skill.approved_hosts = list(s.approved_hosts or [])
            out.append(skill)
        return out

    def clean_stale(self) -> list[str]:
        """Remove what killed installs left behind (``.install-*``, ``.remove-*``, ``*.tmp``);
        returns the removed paths. Call it when nothing else changes the home (start-up)."""
        removed: list[str] = []
        if not self.home.is_dir():
            return removed
        with self._lock():
            candidates = list(self.home.glob("*.tmp")) + list(self.home.glob(".*.tmp"))
            if self.skills_dir.is_dir():
                candidates += [p for p in self.skills_dir.glob(".remove-*")]
                for skill_dir in self.skills_dir.iterdir():
                    if skill_dir.is_dir() and not skill_dir.name.startswith("."):
                        candidates += list(skill_dir.glob(".install-*"))
                        candidates += list(skill_dir.glob(".*.tmp"))
            for p in candidates:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(str(p))
        return removed

    def verify(self) -> list[str]:
        """Re-check every installed version against its RECORD; returns the problems found."""
        problems = []
        if not self.skills_dir.is_dir():
            return problems
        for skill_dir in sorted(
            p for p in self.skills_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            for vdir in sorted(
                p for p in skill_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                where = f"{skill_dir.name} {vdir.name}"
                try:
                    record = parse_record((vdir / RECORD).read_bytes())
                except (OSError, ValueError) as exc:
                    problems.append(f"{where}: RECORD unreadable ({exc})")
                    continue
                present = {
                    p.relative_to(vdir).as_posix() for p in vdir.rglob("*") if p.is_file()
                } - {RECORD, SIGNATURE}
                for name in sorted(present - set(record)):
                    problems.append(f"{where}: {name} is not in RECORD (added)")
                for name, (digest, _size) in sorted(record.items()):
                    f = vdir / name
                    if not f.is_file():
                        problems.append(f"{where}: {name} is missing")
                    elif record_digest(f.read_bytes()) != digest:
                        problems.append(f"{where}: {name} was altered")
        return problems
