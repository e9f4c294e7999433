"""Token-bucket rate limits per user, per conversation and global (shared through the store)."""

from __future__ import annotations

from ..skills.conversation import Message

__all__ = ["RateLimiter", "POLITE"]

POLITE = {
    "zh": "您发消息有点快，请稍等片刻再试。",
    "en": "You're sending messages a little fast; please wait a moment and try again.",
}


class RateLimiter:
    def __init__(
        self,
        store,
        user_per_minute: float,
        conversation_per_minute: float,
        global_per_second: float,
    ) -> None:
        self.store = store
        self.limits = [
            ("global", lambda m: "global", global_per_second, max(global_per_second, 1)),
            (
                "conversation",
                lambda m: f"conv:{m.conversation_id}",
                conversation_per_minute / 60,
                max(conversation_per_minute / 2, 1),
            ),
            (
                "user",
                lambda m: f"user:{m.sender_id}",
                user_per_minute / 60,
                max(user_per_minute / 2, 1),
            ),
        ]

    async def check(self, message: Message) -> str | None:
        """The scope whose limit the message exceeds (user, conversation, global) or None.
        A limit of 0 is off."""
        for scope, key, rate, capacity in reversed(self.limits):
            if rate <= 0:
                continue
            bucket = key(message)
            if hasattr(self.store, "hash_id"):
                bucket = await self.store.hash_id(bucket)  # no staff ids in key names
            if not await self.store.take(bucket, rate, capacity):
                return scope
        return None
