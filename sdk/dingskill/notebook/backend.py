"""The notebook's connection to the message path: a Pipeline (memory store) over an Engine,
run on a private event loop thread so it works inside Jupyter's own running loop."""

from __future__ import annotations

import asyncio
import threading
import uuid

from ..runtime.pipeline import Pipeline
from ..runtime.stores import MemoryStore
from ..skills import Engine
from ..skills.conversation import Message, Reply

__all__ = ["LocalBackend"]


class LocalBackend:
    """Sends widget messages through the same Pipeline the runtime uses."""

    def __init__(self, skills: list, limits: dict | None = None) -> None:
        self.skills = list(skills)
        self.engine = Engine(self.skills)
        self.store = MemoryStore()
        lim = {
            "user_per_minute": 0,
            "conversation_per_minute": 0,
            "global_per_second": 0,
            **(limits or {}),
        }
        self.pipeline = Pipeline(lambda: self.engine, self.store, limits=lim)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dingskill-widget", daemon=True
        )
        self._thread.start()

    def _run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def send(self, text: str, **fields) -> Reply:
        msg = Message(text=text, msg_id=f"widget-{uuid.uuid4().hex}", channel="widget", **fields)
        return self._run(self.pipeline.process(msg, None))

    def context(self, message_fields: dict) -> dict:
        from ..skills.conversation import context_key

        return self._run(self.store.get_context(context_key(Message(text="", **message_fields))))

    def reset(self) -> None:
        self.store = MemoryStore()
        self.pipeline.store = self.store
        self.pipeline.ratelimiter.store = self.store

    def rebuild(self) -> None:
        """Pick up retrained skills."""
        self.engine = Engine(self.skills)

    def intents(self) -> list[str]:
        out = set()
        for s in self.skills:
            out.update(str(c) for c in s.model.classes_)
        out.add("oos")
        return sorted(out)
