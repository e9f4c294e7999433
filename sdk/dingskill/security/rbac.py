"""Role-based access control for operator actions.

Roles map to permissions (the matrix below, overridable in config); subjects are API tokens
(``token:<id>``, the token itself stored only as a salted SHA-256) or DingTalk staff ids
(``staff:<staffId>``). A subject holds permanent roles and temporary grants that expire by
themselves. Every grant, every use of a grant, every expiry and every refusal is handed to
the audit sink. Unknown subjects hold nothing (least privilege).

State lives in one JSON file (``DINGSKILL_HOME/access.json``), changed under a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PERMISSIONS", "ROLES", "AccessControl", "AccessDecision", "AccessError"]

PERMISSIONS: dict[str, str] = {
    "skills.list": "list installed skills",
    "skills.install": "install or upgrade a skill package",
    "skills.rollback": "roll a skill back to its previous version",
    "skills.remove": "remove an installed skill",
    "skills.release": "set who sees a skill version; switch versions (blue-green)",
    "config.reload": "reload the runtime configuration",
    "metrics.read": "read metrics",
    "audit.read": "read the audit log",
    "context.read": "read stored conversation context",
    "access.manage": "grant and revoke roles, create tokens",
    "broker.dlq": "list, show, replay or purge the broker's dead letters",
}

_VIEWER = {"skills.list", "metrics.read"}
_OPERATOR = _VIEWER | {
    "skills.install",
    "skills.rollback",
    "skills.remove",
    "skills.release",
    "config.reload",
}
ROLES: dict[str, frozenset[str]] = {
    "viewer": frozenset(_VIEWER),
    "operator": frozenset(_OPERATOR),
    "admin": frozenset(PERMISSIONS),
}

AuditSink = Callable[[dict], None]


class AccessError(ValueError):
    """A bad role, permission, subject or duration."""


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    subject: str
    permission: str
    roles: tuple[str, ...] = ()
    via_grant: str | None = None
    reason: str = ""


@dataclass
class _State:
    tokens: dict = field(default_factory=dict)
    staff: dict = field(default_factory=dict)
    grants: list = field(default_factory=list)


def _now_ms() -> int:
    return int(time.time() * 1000)


class AccessControl:
    """Roles, tokens, staff ids and temporary grants persisted in a JSON file."""

    def __init__(
        self,
        path: str | os.PathLike,
        roles: dict[str, list[str]] | None = None,
        audit: AuditSink | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.path = Path(path)
        self.roles = self._check_roles(roles) if roles else dict(ROLES)
        self.audit = audit or (lambda record: None)
        self.clock = clock

    @staticmethod
    def _check_roles(roles: dict[str, list[str]]) -> dict[str, frozenset[str]]:
        out = {}
        for name, perms in roles.items():
            unknown = sorted(set(perms) - set(PERMISSIONS))
            if unknown:
                raise AccessError(f"access.roles.{name}: unknown permission(s) {unknown}")
            out[name] = frozenset(perms)
        return out

    # -- persistence -------------------------------------------------------------------
    def _load(self) -> _State:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _State()
        except ValueError as exc:
            raise AccessError(f"{self.path}: not valid JSON: {exc}") from exc
        return _State(data.get("tokens", {}), data.get("staff", {}), data.get("grants", []))

    def _save(self, state: _State) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state.__dict__, fh, indent=2, ensure_ascii=False, sort_keys=True)
        os.replace(tmp, self.path)

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._load()
                yield state
                self._save(state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _role(self, role: str) -> str:
        if role not in self.roles:
            raise AccessError(f"unknown role {role!r}; roles: {sorted(self.roles)}")
        return role

    @staticmethod
    def _subject(subject: str) -> str:
        kind, sep, ident = subject.partition(":")
        if not sep or kind not in ("token", "staff") or not ident:
            raise AccessError(f"subject {subject!r}: expected 'token:<id>' or 'staff:<staffId>'")
        return subject

    # -- identities --------------------------------------------------------------------
    def create_token(self, name: str, role: str, actor: str = "cli") -> str:
        """Create an API token for ``role``; the token is returned once and stored hashed."""
        self._role(role)
        token_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(24)
        salt = secrets.token_hex(8)
        digest = hashlib.sha256((salt + secret).encode()).hexdigest()
        with self._locked() as st:
            st.tokens[token_id] = {
                "name": name,
                "role": role,
                "salt": salt,
                "sha256": digest,
                "created_ms": self.clock(),
            }
        self.audit(self._record(actor, f"token:{token_id}", "access.token.create", "ok", role=role))
        return f"dsk_{token_id}_{secret}"

    def authenticate(self, token: str | None) -> str | None:
        """The subject (``token:<id>``) of a valid API token, else None."""
        if not token or not token.startswith("dsk_"):
            return None
        token_id, _, secret = token[4:].partition("_")
        entry = self._load().tokens.get(token_id)
        if not entry or not secret:
            return None
        digest = hashlib.sha256((entry["salt"] + secret).encode()).hexdigest()
        return f"token:{token_id}" if hmac.compare_digest(digest, entry["sha256"]) else None

    def set_staff_role(self, staff_id: str, role: str | None, actor: str = "cli") -> None:
        """Give a DingTalk staff id a permanent role (None removes it)."""
        with self._locked() as st:
            if role is None:
                st.staff.pop(staff_id, None)
            else:
                st.staff[staff_id] = {"role": self._role(role), "since_ms": self.clock()}
        self.audit(self._record(actor, f"staff:{staff_id}", "access.role.set", "ok", role=role))

    # -- temporary grants --------------------------------------------------------------
    def grant(
        self, subject: str, role: str, duration_s: float, actor: str = "cli", reason: str = ""
    ) -> dict:
        """Give ``subject`` ``role`` for ``duration_s`` seconds."""
        self._subject(subject)
        self._role(role)
        if not 0 < duration_s <= 90 * 86400:
            raise AccessError(f"grant duration must be within (0, 90 days], got {duration_s} s")
        now = self.clock()
        grant = {
            "id": secrets.token_hex(4),
            "subject": subject,
            "role": role,
            "granted_ms": now,
            "expires_ms": now + int(duration_s * 1000),
            "granted_by": actor,
            "reason": reason,
        }
        with self._locked() as st:
            st.grants.append(grant)
        self.audit(
            self._record(
                actor,
                subject,
                "access.grant",
                "ok",
                role=role,
                grant=grant["id"],
                expires_ms=grant["expires_ms"],
            )
        )
        return grant

    def revoke(self, subject_or_grant: str, actor: str = "cli") -> int:
        """Remove grants by grant id or subject (and a staff id's permanent role)."""
        with self._locked() as st:
            before = len(st.grants)
            st.grants = [g for g in st.grants if subject_or_grant not in (g["id"], g["subject"])]
            n = before - len(st.grants)
            if subject_or_grant.startswith("staff:"):
                n += st.staff.pop(subject_or_grant[6:], None) is not None
            if subject_or_grant.startswith("token:"):
                n += st.tokens.pop(subject_or_grant[6:], None) is not None
        self.audit(self._record(actor, subject_or_grant, "access.revoke", "ok", removed=n))
        return n

    def expire(self) -> list[dict]:
        """Drop grants past their expiry, auditing each; returns the expired grants."""
        now = self.clock()
        with self._locked() as st:
            expired = [g for g in st.grants if g["expires_ms"] <= now]
            st.grants = [g for g in st.grants if g["expires_ms"] > now]
        for g in expired:
            self.audit(
                self._record(
                    "system",
                    g["subject"],
                    "access.grant.expired",
                    "ok",
                    role=g["role"],
                    grant=g["id"],
                )
            )
        return expired

    # -- decisions ---------------------------------------------------------------------
    def holdings(self, subject: str) -> list[tuple[str, str | None]]:
        """(role, grant id or None) pairs that ``subject`` holds now."""
        self.expire()
        st = self._load()
        held: list[tuple[str, str | None]] = []
        kind, _, ident = subject.partition(":")
        if kind == "token" and ident in st.tokens:
            held.append((st.tokens[ident]["role"], None))
        if kind == "staff" and ident in st.staff:
            held.append((st.staff[ident]["role"], None))
        now = self.clock()
        held += [
            (g["role"], g["id"])
            for g in st.grants
            if g["subject"] == subject and g["expires_ms"] > now
        ]
        return held

    def authorize(
        self, subject: str | None, permission: str, client_ip: str = "", obj: str = ""
    ) -> AccessDecision:
        """May ``subject`` do ``permission``? Refusals and grant uses are audited."""
        if permission not in PERMISSIONS:
            raise AccessError(f"unknown permission {permission!r}")
        if not subject:
            decision = AccessDecision(False, "anonymous", permission, reason="not authenticated")
        else:
            held = self.holdings(subject)
            permanent = [r for r, g in held if g is None and permission in self.roles.get(r, ())]
            granted = [
                (r, g) for r, g in held if g is not None and permission in self.roles.get(r, ())
            ]
            roles = tuple(sorted({r for r, _ in held}))
            if permanent:
                decision = AccessDecision(True, subject, permission, roles)
            elif granted:
                decision = AccessDecision(True, subject, permission, roles, via_grant=granted[0][1])
                self.audit(
                    self._record(
                        subject,
                        obj or permission,
                        "access.grant.used",
                        "ok",
                        permission=permission,
                        grant=granted[0][1],
                        client_ip=client_ip,
                    )
                )
            else:
                decision = AccessDecision(
                    False,
                    subject,
                    permission,
                    roles,
                    reason=f"roles {list(roles)} lack {permission}",
                )
        if not decision.allowed:
            self.audit(
                self._record(
                    decision.subject,
                    obj or permission,
                    permission,
                    "denied",
                    reason=decision.reason,
                    client_ip=client_ip,
                )
            )
        return decision

    def report(self) -> list[dict]:
        """Who holds what now: one row per token, staff role and active grant."""
        self.expire()
        st = self._load()
        rows = [
            {
                "subject": f"token:{k}",
                "name": v["name"],
                "role": v["role"],
                "source": "token",
                "expires_ms": None,
            }
            for k, v in sorted(st.tokens.items())
        ]
        rows += [
            {
                "subject": f"staff:{k}",
                "name": "",
                "role": v["role"],
                "source": "permanent",
                "expires_ms": None,
            }
            for k, v in sorted(st.staff.items())
        ]
        rows += [
            {
                "subject": g["subject"],
                "name": g.get("reason", ""),
                "role": g["role"],
                "source": f"grant {g['id']} by {g['granted_by']}",
                "expires_ms": g["expires_ms"],
            }
            for g in st.grants
        ]
        return rows

    def _record(self, actor: str, obj: str, operation: str, result: str, **extra) -> dict:
        rec = {
            "ts_ms": self.clock(),
            "actor": actor,
            "object": obj,
            "operation": operation,
            "result": result,
        }
        rec.update({k: v for k, v in extra.items() if v not in (None, "")})
        return rec
