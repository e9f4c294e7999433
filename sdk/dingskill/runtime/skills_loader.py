"""The installed skills as an Engine, reloaded without a restart when the home changes."""

from __future__ import annotations

import asyncio
import gc
import logging

from ..skills import Engine
from ..skills.arbitration import ArbitrationOptions
from ..skills.outbound import OutboundPolicy
from ..skills.packaging import SkillHome
from ..skills.release import ReleaseManager
from .late_replies import late_reply_warning
from .visibility import VisibilityRouter

__all__ = ["SkillSet", "arbitration_options"]

log = logging.getLogger("dingskill.runtime")


def _freeze_heap() -> None:
    """Move the loaded models (hundreds of thousands of long-lived objects: vocabularies,
    embedding tables) out of the cyclic garbage collector's view. Otherwise every full
    collection walks them all (~0.2 s on a small machine) and stalls the event loop: the
    runtime's p99 latency was those collections. A reload unfreezes first so the previous
    skill set can still be collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def arbitration_options(data: dict) -> ArbitrationOptions:
    """The engine's arbitration, reply language and handover from a runtime configuration
    (its ``arbitration``, ``handover`` and ``messages.reply_language`` fields)."""
    arb, hand = data.get("arbitration", {}), data.get("handover", {})
    return ArbitrationOptions(
        **{k: v for k, v in arb.items() if k in ArbitrationOptions.__dataclass_fields__},
        reply_language=data.get("messages", {}).get("reply_language", "auto"),
        handover_after=hand.get("after_misses", 3),
        handover_contact=hand.get("contact"),
        handover_group=hand.get("group"),
    )


class SkillSet:
    """Holds the current Engine; :meth:`watch` swaps in a new one when ``generation()`` moves."""

    def __init__(
        self,
        home: SkillHome,
        handler_timeout: float = 5.0,
        metrics=None,
        audit=None,
        secrets: dict | None = None,
        allow_private: list | None = None,
        options=None,
    ) -> None:
        self.home = home
        self.options = options  # ArbitrationOptions (the arbitration / handover sections)
        self.secrets = dict(secrets or {})  # skill id -> names of granted secrets
        self.allow_private = list(allow_private or [])
        self.handler_timeout = handler_timeout
        self.metrics, self.audit = metrics, audit
        self.generation = -1
        self.engine = Engine([], handler_timeout=handler_timeout, options=options)
        self.router = VisibilityRouter([], {})
        self.skills: list = []
        self.last_error: str | None = None
        self.warnings: list[str] = []  # of the current set (late replies without permission)

    def reload(self) -> bool:
        """Load the active skills if the home changed; a broken skill keeps the old set."""
        gen = self.home.generation()
        if gen == self.generation:
            return False
        try:
            skills = self.home.load_skills()
            router = self._router(skills)
            for s in [*skills, *router.versions.values()]:
                s.outbound = OutboundPolicy.for_skill(
                    s.manifest,
                    s.approved_hosts if s.approved_hosts is not None else [],
                    self.secrets.get(s.manifest.id, []),
                    self.allow_private,
                )
            engine = Engine(skills, handler_timeout=self.handler_timeout, options=self.options)
        except Exception as exc:  # noqa: BLE001 - keep serving the previous set
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error(
                "skill reload failed; keeping the previous skills", extra={"error": self.last_error}
            )
            if self.audit is not None:
                self.audit.admin(
                    "system", "skills", "skills.reload", "failed", error=self.last_error
                )
            self.generation = gen
            return False
        self.engine, self.skills, self.generation, self.last_error = engine, skills, gen, None
        self.router = router
        self.warnings = [w for s in skills if (w := late_reply_warning(s.manifest))]
        for w in self.warnings:
            log.warning("skill may drop late replies", extra={"warning": w})
        _freeze_heap()
        if self.metrics is not None:
            self.metrics.skills_loaded.set(len(skills))
        if self.audit is not None:
            self.audit.admin(
                "system",
                ",".join(f"{s.manifest.id}@{s.manifest.version}" for s in skills) or "-",
                "skills.reload",
                "ok",
                generation=gen,
            )
        log.info(
            "skills loaded", extra={"generation": gen, "skills": [s.manifest.id for s in skills]}
        )
        return True

    def _router(self, stable: list) -> VisibilityRouter:
        """Release plans with a rule, and the staged versions they show, loaded."""
        manager = ReleaseManager(self.home)
        plans = [p for p in manager.plans() if p.rules]
        loaded = {(s.manifest.id, s.manifest.version): s for s in stable}
        versions = {}
        for p in plans:
            for v in {*p.rules, p.stable}:
                versions[(p.skill_id, v)] = loaded.get((p.skill_id, v)) or manager.load_version(
                    p.skill_id, v
                )
        return VisibilityRouter(
            plans, versions, handler_timeout=self.handler_timeout, options=self.options
        )

    def current(self) -> Engine:
        return self.engine

    def for_message(self, message) -> Engine:
        """The Engine of the skill versions this message's sender sees (visibility scopes,
        staged releases); the stable set when no skill is limited."""
        return self.router.engine_for(
            self.engine, message.sender_id or "", message.conversation_id or ""
        )

    def permissions(self, skill_id: str | None) -> list[str]:
        for s in self.skills:
            if s.manifest.id == skill_id:
                return s.manifest.permissions
        return []

    async def watch(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(self.reload)
