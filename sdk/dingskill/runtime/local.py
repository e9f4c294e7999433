"""``LocalPipeline``: the runtime's one :class:`~dingskill.runtime.pipeline.Pipeline` in
memory, for the entry points that run inside the author's own process — the notebook chat
widget, ``dingskill chat`` (terminal), conversation replay / ``dingskill test-conversations``
and :func:`respond` (``dingskill.respond``, what ``Skill.respond`` was).

It is the same object ``dingskill run`` builds (same preprocessing, size limit, admin-free
routing, multi-turn flows, context handling), over a :class:`MemoryStore`, with rate limits
off by default (one author typing is not a flood). Coroutines run on one private event-loop
thread shared by every local pipeline of the process, so the blocking methods also work
inside Jupyter's own running loop."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine
from typing import Any

from ..skills import Engine
from ..skills.conversation import Message, Reply, context_key
from .pipeline import Pipeline
from .stores import MemoryStore

__all__ = ["LocalPipeline", "respond", "LOCAL_LIMITS"]

# rate limits off (0 = unlimited); every other limit is the runtime's default
LOCAL_LIMITS = {"user_per_minute": 0, "conversation_per_minute": 0, "global_per_second": 0}

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(
                target=_loop.run_forever, name="dingskill-local-pipeline", daemon=True
            ).start()
        return _loop


def run_blocking(coro: Coroutine[Any, Any, Any], timeout: float = 120.0) -> Any:
    """Run ``coro`` on the shared private loop and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, _background_loop()).result(timeout)


class LocalPipeline:
    """An in-memory :class:`Pipeline` over an :class:`Engine` of ``skills``.

    ``channel`` names the entry point in replies' metrics and message ids (``widget``,
    ``terminal``, ``replay``, ``local``)."""

    def __init__(
        self,
        skills: list,
        limits: dict | None = None,
        channel: str = "local",
        engine: Engine | None = None,
    ) -> None:
        if not isinstance(skills, list | tuple):
            skills = [skills]
        self.skills = list(skills)
        self.channel = channel
        # ``engine``: one built by the caller (tests pass a fixed clock / today)
        self.engine = engine if engine is not None else Engine(self.skills)
        self.store = MemoryStore()
        self.pipeline = Pipeline(
            lambda: self.engine, self.store, limits={**LOCAL_LIMITS, **(limits or {})}
        )

    # -- messages -----------------------------------------------------------------------------
    async def aprocess(self, message: Message) -> Reply:
        """Process one message (async); a message id is given when the caller has none."""
        if not message.msg_id:
            message.msg_id = f"{self.channel}-{uuid.uuid4().hex}"
        reply = await self.pipeline.process(message, None)
        assert reply is not None  # fresh ids are never duplicates
        return reply

    def process(self, message: Message) -> Reply:
        """Blocking :meth:`aprocess`."""
        return run_blocking(self.aprocess(message))

    def send(self, text: str, **fields) -> Reply:
        """Send ``text`` as a user message (``fields``: any :class:`Message` field)."""
        fields.setdefault("channel", self.channel)
        return self.process(Message(text=text, **fields))

    def classify(self, text: str):
        """The routing decision for ``text`` after the pipeline's preprocessing, without
        running a response or touching any conversation: ``(skill, Decision)``."""
        return self.pipeline.route(text)

    def respond(self, text: str, context: dict | None = None, **message_fields) -> Reply:
        """:meth:`send` with the conversation's context held by the caller: ``context`` (a
        dict) is loaded before the turn and updated in place after it."""
        message_fields.setdefault("channel", self.channel)
        if context:
            self.set_context(message_fields, context)
        reply = self.process(Message(text=text, **message_fields))
        if context is not None:
            context.clear()
            context.update(self.context(message_fields))
        return reply

    # -- conversation state ---------------------------------------------------------------------
    def context(self, message_fields: dict) -> dict:
        """The stored context of the conversation ``message_fields`` belong to."""
        key = context_key(Message(**{**message_fields, "text": ""}))
        return run_blocking(self.store.get_context(key))

    def set_context(self, message_fields: dict, context: dict) -> None:
        key = context_key(Message(**{**message_fields, "text": ""}))
        run_blocking(self.store.set_context(key, context))

    def reset(self) -> None:
        """Forget every conversation (a fresh store)."""
        self.store = MemoryStore()
        self.pipeline.use_store(self.store)

    def rebuild(self) -> None:
        """Pick up retrained skills."""
        self.engine = Engine(self.skills)

    def intents(self) -> list[str]:
        out = {"oos"}
        for s in self.skills:
            out.update(str(c) for c in s.model.classes_)
        return sorted(out)


def respond(skills, text: str, context: dict | None = None, **message_fields) -> Reply:
    """Answer one message as the runtime would, through an in-memory Pipeline.

    ``skills``: a Skill or a list of them. ``context`` (a dict, updated in place) carries the
    multi-turn state from one call to the next; ``message_fields`` are :class:`Message`
    fields (``sender_nick``, ``conversation_type``, ...)."""
    return LocalPipeline(skills).respond(text, context, **message_fields)
