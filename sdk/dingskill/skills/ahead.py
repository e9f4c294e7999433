"""``DecisionCache``: routing decisions made ahead of the engine (in the runtime's
classification threads), which the engine on the event loop only looks up.

The engine asks :func:`~dingskill.skills.arbitration.route` (a pending flow's digression
checks, a stale answer) and :func:`~dingskill.skills.arbitration.arbitrate` (a new request)
about the same text; both are pure functions of the loaded skills, the text and the
arbitration options, so what a thread computed for this engine is what the loop would
compute. Nothing fills the cache by itself (the notebook, which retrains skills in place,
never fills it); the entries are kept per options object, bounded, oldest first out."""

from __future__ import annotations

import dataclasses
import threading

from .arbitration import arbitrate, route, sentences

__all__ = ["DecisionCache"]


class DecisionCache:
    """Per text: the ``route`` and ``arbitrate`` results for one engine's skills."""

    def __init__(self, size: int = 4096) -> None:
        if size < 1:
            raise ValueError(f"DecisionCache: size must be >= 1, got {size}")
        self.size = int(size)
        self._routes: dict[str, tuple[object, tuple]] = {}
        self._arbitrations: dict[str, tuple[object, object]] = {}
        self._lock = threading.Lock()

    def route(self, text: str, options) -> tuple | None:
        """The cached ``route(skills, text, options)`` result, or None."""
        hit = self._routes.get(text)
        return hit[1] if hit is not None and hit[0] is options else None

    def arbitration(self, text: str, options):
        """A copy of the cached ``arbitrate(skills, text, options)`` result, or None."""
        hit = self._arbitrations.get(text)
        if hit is None or hit[0] is not options:
            return None
        arb = hit[1]
        return dataclasses.replace(arb, clarify=list(arb.clarify))

    def has(self, text: str, options, arbitration: bool) -> bool:
        if self.route(text, options) is None:
            return False
        return not arbitration or self.arbitration(text, options) is not None

    def fill(self, skills: list, text: str, options, arbitration: bool) -> tuple:
        """Compute and keep the route (and, with ``arbitration``, the arbitration) of
        ``text``; returns the route."""
        routed = self.route(text, options)
        if arbitration and self.arbitration(text, options) is None:
            arb = arbitrate(skills, text, options)
            self._put(self._arbitrations, text, (options, arb))
            if routed is None and len(sentences(text)) <= 1:
                # one sentence: the arbitration is route's own decision (tested), so it is
                # not made twice
                routed = (arb.skill, arb.decision) if arb.served else (None, arb.decision)
                self._put(self._routes, text, (options, routed))
        if routed is None:
            routed = route(skills, text, options)
            self._put(self._routes, text, (options, routed))
        return routed

    def _put(self, items: dict, key: str, value) -> None:
        with self._lock:
            items[key] = value
            while len(items) > self.size:
                del items[next(iter(items))]
