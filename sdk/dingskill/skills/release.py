"""Visibility and staged release of installed skill versions.

Per skill, ``skills/<id>/release.json`` in the skill home says who sees which installed
version; the version in ``skills/<id>/current`` is the *stable* one:

- a version may be limited to an audience: ``developers`` (a list of staff ids), ``groups``
  (conversation ids), ``percent`` (a share of users, stable per user: the same user always
  lands on the same side) or ``everyone``;
- a message is answered by the newest non-stable version whose audience admits its sender,
  else by the stable version — unless the stable version is itself limited (a skill still in
  development, visible to developers only) and the sender is outside its audience: then the
  skill does not answer at all;
- :meth:`ReleaseManager.switch` makes another installed version stable in one atomic step
  (blue-green), remembering the one it replaced; :meth:`ReleaseManager.switch_back` returns to
  it at once. Both versions stay installed side by side. A stable version that is switched
  away parks its audience rule and gets it back when it is stable again, so a developers-only
  version switched away and back is developers-only again.

Every change is written to the skill's ``history.json`` and to the audit sink given.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from .packaging.errors import PackageError
from .packaging.home import SkillHome, _write_atomic

__all__ = ["Audience", "ReleaseError", "ReleaseManager", "ReleasePlan", "Visibility", "bucket"]

PLAN_FILE = "release.json"


class ReleaseError(PackageError):
    """A visibility or switch request is refused; the message says what to change."""


class Audience(str, Enum):
    DEVELOPERS = "developers"
    GROUPS = "groups"
    PERCENT = "percent"
    EVERYONE = "everyone"


def bucket(skill_id: str, user_id: str) -> float:
    """The user's stable position in [0, 100) for ``skill_id`` (SHA-256, not Python's hash)."""
    digest = hashlib.sha256(f"{skill_id}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


@dataclass(frozen=True)
class Visibility:
    """Who sees one version of a skill."""

    audience: Audience
    staff: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    percent: float = 0.0

    def __post_init__(self) -> None:
        if self.audience == Audience.DEVELOPERS and not self.staff:
            raise ReleaseError("developers: give at least one staff id")
        if self.audience == Audience.GROUPS and not self.groups:
            raise ReleaseError("groups: give at least one conversation (group) id")
        if self.audience == Audience.PERCENT and not 0 < self.percent <= 100:
            raise ReleaseError(f"percent: {self.percent} is not in (0, 100]")

    def admits(self, skill_id: str, sender_id: str, conversation_id: str = "") -> bool:
        a = self.audience
        if a == Audience.EVERYONE:
            return True
        if a == Audience.DEVELOPERS:
            return sender_id in self.staff
        if a == Audience.GROUPS:
            return bool(conversation_id) and conversation_id in self.groups
        return bucket(skill_id, sender_id) < self.percent

    def describe(self) -> str:
        a = self.audience
        if a == Audience.DEVELOPERS:
            return f"developers ({', '.join(self.staff)})"
        if a == Audience.GROUPS:
            return f"groups ({', '.join(self.groups)})"
        if a == Audience.PERCENT:
            return f"{self.percent:g}% of users"
        return "everyone"

    def to_dict(self) -> dict:
        out: dict = {"audience": self.audience.value}
        if self.staff:
            out["staff"] = list(self.staff)
        if self.groups:
            out["groups"] = list(self.groups)
        if self.audience == Audience.PERCENT:
            out["percent"] = self.percent
        return out

    @classmethod
    def from_dict(cls, d) -> Visibility:
        """From ``{"audience", "staff": [...], "groups": [...], "percent"}``; a field of the
        wrong type is a :class:`ReleaseError` naming it (a string is never split into
        characters)."""
        if not isinstance(d, dict):
            raise ReleaseError(f"visibility: expected an object, got {type(d).__name__}")
        try:
            audience = Audience(d.get("audience"))
        except (ValueError, TypeError) as exc:
            raise ReleaseError(
                f"audience {d.get('audience')!r}: one of {', '.join(a.value for a in Audience)}"
            ) from exc

        def ids(name: str) -> tuple[str, ...]:
            v = d.get(name)
            if v is None:
                return ()
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise ReleaseError(
                    f'{name}: expected a list of non-empty strings (e.g. ["dev-1"]), '
                    f"got {type(v).__name__} {str(v)[:60]!r}"
                )
            return tuple(v)

        percent = d.get("percent")
        if percent is None:
            percent = 0.0
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise ReleaseError(f"percent: expected a number in (0, 100], got {percent!r}")
        return cls(audience, ids("staff"), ids("groups"), float(percent))


@dataclass
class ReleasePlan:
    """A skill's stable version, the one to switch back to, and per-version visibility."""

    skill_id: str
    stable: str | None
    previous: str | None = None
    rules: dict[str, Visibility] = field(default_factory=dict)
    parked: dict[str, Visibility] = field(default_factory=dict)

    def make_stable(self, version: str) -> None:
        """``version`` becomes the stable one: a staged rule on it is dropped (it is now for
        everyone) unless it parked an audience as stable before, which comes back; the old
        stable one parks its rule (developers only, say) and is seen by nobody meanwhile."""
        old = self.stable
        self.rules.pop(version, None)
        if version in self.parked:
            self.rules[version] = self.parked.pop(version)
        if old is not None and old != version:
            rule = self.rules.pop(old, None)
            if rule is not None:
                self.parked[old] = rule
        self.previous, self.stable = old, version

    def pick(self, sender_id: str, conversation_id: str = "") -> str | None:
        """The version this sender sees (None: the skill is hidden from them)."""
        from .market.index import parse_version

        def key(v: str):
            try:
                return parse_version(v)
            except PackageError:
                return (0, 0, 0, (0,))

        for ver in sorted(self.rules, key=key, reverse=True):
            if ver != self.stable and self.rules[ver].admits(
                self.skill_id, sender_id, conversation_id
            ):
                return ver
        rule = self.rules.get(self.stable) if self.stable else None
        if rule is None or rule.admits(self.skill_id, sender_id, conversation_id):
            return self.stable
        return None

    @property
    def staged(self) -> list[str]:
        """Versions other than the stable one that some users see."""
        return sorted(v for v in self.rules if v != self.stable)

    def to_dict(self) -> dict:
        return {
            "skill_id": self.skill_id,
            "stable": self.stable,
            "previous": self.previous,
            "rules": {v: r.to_dict() for v, r in sorted(self.rules.items())},
            "parked": {v: r.to_dict() for v, r in sorted(self.parked.items())},
        }


class ReleaseManager:
    """Reads and changes the release plans of a skill home (under its lock)."""

    def __init__(self, home: SkillHome | None = None, audit: Callable[[dict], None] | None = None):
        self.home = home or SkillHome()
        self.audit = audit

    # -- reading --------------------------------------------------------------------------------
    def plan(self, skill_id: str) -> ReleasePlan:
        skill_dir = self.home.skills_dir / skill_id
        stable = self.home._current(skill_id)
        if stable is None:
            raise ReleaseError(f"{skill_id} is not installed")
        try:
            data = json.loads((skill_dir / PLAN_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except ValueError as exc:
            raise ReleaseError(f"{skill_dir / PLAN_FILE}: not valid JSON ({exc})") from exc
        installed = set(self.home._versions(skill_id)) | {stable}
        rules = {
            v: Visibility.from_dict(r)
            for v, r in (data.get("rules") or {}).items()
            if v in installed  # a removed version's rule is void
        }
        parked = {
            v: Visibility.from_dict(r)
            for v, r in (data.get("parked") or {}).items()
            if v in installed
        }
        previous = data.get("previous") if data.get("previous") in installed else None
        return ReleasePlan(skill_id, stable, previous, rules, parked)

    def plans(self) -> list[ReleasePlan]:
        return [self.plan(s.id) for s in self.home.installed()]

    def load_version(self, skill_id: str, version: str):
        """An installed version loaded as its install approved it (handlers, outbound hosts)."""
        from .skill import Skill

        inst = next(
            (
                e
                for e in reversed(self.home._history(skill_id))
                if e.get("action") == "install" and e.get("version") == version
            ),
            {},
        )
        skill = Skill.load(
            self.home.skills_dir / skill_id / version, trust=bool(inst.get("trusted"))
        )
        skill.approved_hosts = list(inst.get("outbound", []))
        return skill

    # -- changes ----------------------------------------------------------------------------------
    def _save(self, plan: ReleasePlan, event: dict, actor: str) -> None:
        skill_dir = self.home.skills_dir / plan.skill_id
        body = {k: v for k, v in plan.to_dict().items() if k != "stable"}
        _write_atomic(skill_dir / PLAN_FILE, json.dumps(body, indent=2, sort_keys=True).encode())
        history = self.home._history(plan.skill_id)
        history.append({**event, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "actor": actor})
        _write_atomic(skill_dir / "history.json", json.dumps(history, indent=2).encode())

    def _record(self, actor: str, skill_id: str, operation: str, **extra) -> None:
        if self.audit is not None:
            self.audit(
                {
                    "actor": actor,
                    "object": skill_id,
                    "operation": operation,
                    "result": "ok",
                    **extra,
                }
            )

    def _installed_version(self, skill_id: str, version: str) -> None:
        if version not in self.home._versions(skill_id) and version != self.home._current(skill_id):
            have = ", ".join(self.home._versions(skill_id)) or "none"
            raise ReleaseError(f"{skill_id} {version} is not installed (installed: {have})")

    def set_visibility(
        self, skill_id: str, version: str, visibility: Visibility | None, actor: str = "cli"
    ) -> ReleasePlan:
        """Limit ``version`` to an audience (None: clear its rule; for a staged version that
        means nobody sees it, for the stable one that it is visible to everyone)."""
        with self.home._lock():
            plan = self.plan(skill_id)
            self._installed_version(skill_id, version)
            if visibility is None or (
                version == plan.stable and visibility.audience == Audience.EVERYONE
            ):
                plan.rules.pop(version, None)
            else:
                plan.rules[version] = visibility
            desc = visibility.describe() if visibility else "cleared"
            self._save(
                plan,
                {"version": version, "action": "visibility", "visibility": desc},
                actor,
            )
            self.home._bump()
        self._record(actor, skill_id, "skills.visibility", version=version, visibility=desc)
        return plan

    def switch(self, skill_id: str, version: str, actor: str = "cli") -> ReleasePlan:
        """Make ``version`` the stable one for everyone (atomic; the old one is kept for
        :meth:`switch_back`). A staged rule on it is dropped: it is now everyone's; the old
        stable one parks its audience rule until it is stable again."""
        with self.home._lock():
            plan = self.plan(skill_id)
            self._installed_version(skill_id, version)
            if version == plan.stable:
                raise ReleaseError(f"{skill_id} {version} is already the stable version")
            old = plan.stable
            plan.make_stable(version)  # the old stable: plain "previous", seen by nobody
            self._save(plan, {"version": version, "action": "switch", "from": old}, actor)
            _write_atomic(self.home.skills_dir / skill_id / "current", version.encode())
            self.home._bump()
        self._record(actor, skill_id, "skills.switch", version=version, previous=old)
        return plan

    def switch_back(self, skill_id: str, actor: str = "cli") -> ReleasePlan:
        """Return at once to the version the last :meth:`switch` replaced."""
        with self.home._lock():
            plan = self.plan(skill_id)
            if not plan.previous:
                raise ReleaseError(f"{skill_id}: no earlier switch to go back from")
            back, cur = plan.previous, plan.stable
            plan.make_stable(back)  # with the audience it had (developers only, say)
            self._save(plan, {"version": back, "action": "switch_back", "from": cur}, actor)
            _write_atomic(self.home.skills_dir / skill_id / "current", back.encode())
            self.home._bump()
        self._record(actor, skill_id, "skills.switch_back", version=back, previous=cur)
        return plan
