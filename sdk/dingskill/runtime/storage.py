"""The storage the runtime needs, split by concern: conversation context, message-id dedup
(:class:`DedupState` per message id), rate-limit buckets and stored audit records. Each consumer depends on one narrow
interface (the Pipeline on context + dedup, the rate limiter on limits, the audit log on
audit); :class:`Stores` bundles them. One backend of :mod:`.stores` (memory, SQLite, Redis)
implements all four over one connection, but a deployment may mix backends per concern."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

__all__ = [
    "AuditStore",
    "ContextStore",
    "DedupState",
    "DedupStore",
    "LimitStore",
    "Stores",
]


# a message's "replying" mark stored with its turn's context: ``(msg_id, ttl_s)``
Replying = tuple[str, float]


@runtime_checkable
class ContextStore(Protocol):
    """Conversation context: a JSON-able dict per :func:`~dingskill.skills.context_key`."""

    async def get_context(self, key: str) -> dict: ...
    async def set_context(self, key: str, context: dict) -> None: ...


@runtime_checkable
class DedupStore(Protocol):
    """Message-id dedup: one :class:`DedupState` per message id, no owners.

    ``claim`` is an atomic set-if-absent: it stores ``processing`` for ``ttl_s`` when nothing
    (or an expired entry) is stored and returns the state found before (``NEW`` when it set
    it). ``replying`` and ``finish`` overwrite the state for ``ttl_s``; ``release`` forgets
    the message (an attempt that failed before replying: a later delivery handles it)."""

    async def claim(self, msg_id: str, ttl_s: float) -> DedupState: ...
    async def replying(self, msg_id: str, ttl_s: float) -> None: ...
    async def finish(self, msg_id: str, ttl_s: float) -> None: ...
    async def release(self, msg_id: str) -> None: ...


@runtime_checkable
class LimitStore(Protocol):
    """Token buckets of the rate limits."""

    async def take(self, bucket: str, rate: float, capacity: float) -> bool: ...


@runtime_checkable
class AuditStore(Protocol):
    """Audit records kept beside the audit file (sealed when a keyring is set)."""

    async def add_audit(self, record: dict) -> None: ...
    async def add_audit_many(self, records: list[dict]) -> None: ...
    async def read_audit(self) -> list[dict]: ...


@dataclass(frozen=True)
class Stores:
    """One store per concern."""

    context: ContextStore
    dedup: DedupStore
    limits: LimitStore
    audit: AuditStore | None = None

    @classmethod
    def of(cls, backend: object) -> Stores:
        """``backend`` for every concern (or ``backend`` itself when it is a Stores)."""
        if isinstance(backend, Stores):
            return backend
        return cls(backend, backend, backend, backend)  # type: ignore[arg-type]


class DedupState(str, Enum):
    """What a message id's dedup entry says (stored as the value's text)."""

    NEW = "new"  # nothing stored: the caller has just set PROCESSING and handles the message
    PROCESSING = "processing"  # being handled (expires after limits.claim_ttl_s)
    REPLYING = "replying"  # its reply is being sent: it may have reached the user
    DONE = "done"  # answered (kept limits.dedup_ttl_s)

    @classmethod
    def parse(cls, stored: str | bytes | None) -> DedupState:
        """The state of a stored value (``None``: ``NEW``). Values written by older versions
        carried the replica after a colon (``processing:<replica>``); the suffix is ignored."""
        if stored is None:
            return cls.NEW
        text = stored.decode() if isinstance(stored, bytes) else stored
        try:
            return cls(text.partition(":")[0])
        except ValueError:
            raise ValueError(f"unknown message-id dedup state {text!r}") from None

    @property
    def answered(self) -> bool:
        """A reply was (maybe) sent: never answer this message again."""
        return self in (DedupState.REPLYING, DedupState.DONE)
