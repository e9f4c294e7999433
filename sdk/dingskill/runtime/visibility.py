"""Per-message choice of skill versions (visibility scopes, staged release, blue-green).

:class:`VisibilityRouter` holds the release plans of the installed skills with every version
some user may see, loaded; :meth:`VisibilityRouter.engine_for` gives the Engine made of the
versions the message's sender sees. Engines are built once per distinct selection and cached,
so a message costs one dictionary lookup per skill with a plan."""

from __future__ import annotations

from ..skills import Engine
from ..skills.release import ReleasePlan

__all__ = ["VisibilityRouter"]


class VisibilityRouter:
    def __init__(
        self, plans: list[ReleasePlan], versions: dict[tuple[str, str], object], **engine_kw
    ) -> None:
        self.plans = [p for p in plans if p.rules]
        self.versions = versions  # (skill id, version) -> loaded Skill
        self.engine_kw = engine_kw
        self._engines: dict[tuple, Engine] = {}

    @property
    def active(self) -> bool:
        """Whether any skill has a visibility rule (else every user sees the stable set)."""
        return bool(self.plans)

    def selection(self, sender_id: str, conversation_id: str = "") -> tuple:
        return tuple((p.skill_id, p.pick(sender_id, conversation_id)) for p in self.plans)

    def engine_for(self, default: Engine, sender_id: str, conversation_id: str = "") -> Engine:
        """The Engine of the versions this sender sees (``default`` when nothing is limited)."""
        if not self.plans:
            return default
        key = self.selection(sender_id, conversation_id)
        engine = self._engines.get(key)
        if engine is None:
            chosen = dict(key)
            skills = []
            for s in default.skills:
                sid = s.manifest.id
                if sid not in chosen:
                    skills.append(s)
                elif chosen[sid] is not None:
                    skills.append(self.versions[(sid, chosen[sid])])
            engine = Engine(skills, **self.engine_kw)
            if len(self._engines) > 256:
                self._engines.clear()
            self._engines[key] = engine
        return engine

    def describe(self) -> list[dict]:
        return [p.to_dict() for p in self.plans]
