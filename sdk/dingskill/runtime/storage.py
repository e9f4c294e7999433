"""The storage the runtime needs, split by concern: conversation context, message-id dedup
(claims), rate-limit buckets and stored audit records. Each consumer depends on one narrow
interface (the Pipeline on context + dedup, the rate limiter on limits, the audit log on
audit); :class:`Stores` bundles them. One backend of :mod:`.stores` (memory, SQLite, Redis)
implements all four over one connection, but a deployment may mix backends per concern."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

__all__ = [
    "AuditStore",
    "Claim",
    "ClaimKind",
    "ContextStore",
    "DedupStore",
    "LimitStore",
    "Stores",
]


@runtime_checkable
class ContextStore(Protocol):
    """Conversation context: a JSON-able dict per :func:`~dingskill.skills.context_key`."""

    async def get_context(self, key: str) -> dict: ...
    async def set_context(self, key: str, context: dict) -> None: ...


@runtime_checkable
class DedupStore(Protocol):
    """Message-id claims: a message is handled once (see :class:`Claim`)."""

    async def claim(self, msg_id: str, ttl_s: float, owner: str = "") -> str: ...
    async def replying(self, msg_id: str, owner: str, ttl_s: float) -> None: ...
    async def finish(self, msg_id: str, ttl_s: float) -> None: ...
    async def release(self, msg_id: str) -> None: ...
    async def takeover(self, msg_id: str, old_state: str, owner: str, ttl_s: float) -> bool: ...
    async def alive(self, owner: str) -> bool: ...
    async def heartbeat(self, owner: str, ttl_s: float) -> None: ...


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


class ClaimKind(str, Enum):
    NEW = "new"  # nobody handled the message: this caller now owns it
    PROCESSING = "processing"  # a replica is handling it
    REPLYING = "replying"  # a replica is sending the reply
    DONE = "done"  # answered


@dataclass(frozen=True)
class Claim:
    """The state of a message-id claim as stored (``"processing:<replica>"``)."""

    kind: ClaimKind
    owner: str = ""

    @classmethod
    def parse(cls, state: str) -> Claim:
        kind, _, owner = state.partition(":")
        try:
            return cls(ClaimKind(kind), owner)
        except ValueError:
            raise ValueError(f"unknown claim state {state!r}") from None

    @property
    def held(self) -> bool:
        """Being handled by a replica (not new, not done)."""
        return self.kind in (ClaimKind.PROCESSING, ClaimKind.REPLYING)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.owner}" if self.owner else self.kind.value
