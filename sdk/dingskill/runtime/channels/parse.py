"""Robot-message payload (ChatbotMessage JSON) -> :class:`Message`, validated."""

from __future__ import annotations

from ...skills.conversation import Message

__all__ = ["FrameError", "parse_robot_message"]

MAX_PAYLOAD_CHARS = 2_000_000


class FrameError(ValueError):
    """A frame or payload that is not a robot message this runtime can answer."""


def parse_robot_message(data: dict, channel: str) -> tuple[Message, str | None, int]:
    """Returns (message, session webhook, webhook expiry ms)."""
    if not isinstance(data, dict):
        raise FrameError("payload is not a JSON object")
    kind = data.get("msgtype", "text")
    if kind != "text":
        raise FrameError(f"unsupported msgtype {kind!r} (only text is answered)")
    text = (data.get("text") or {}).get("content")
    if not isinstance(text, str):
        raise FrameError("field text.content is missing or not a string")
    for f in ("msgId", "conversationId", "senderId"):
        if not isinstance(data.get(f), str) or not data[f]:
            raise FrameError(f"field {f} is missing")
    ctype = "group" if str(data.get("conversationType")) == "2" else "single"
    at_users = [
        u.get("dingtalkId") or u.get("staffId") or ""
        for u in data.get("atUsers") or []
        if isinstance(u, dict)
    ]
    msg = Message(
        text=text,
        sender_id=data.get("senderStaffId") or data["senderId"],
        sender_nick=data.get("senderNick", ""),
        conversation_id=data["conversationId"],
        conversation_type=ctype,
        at_users=at_users,
        msg_id=data["msgId"],
        channel=channel,
        create_at=int(data.get("createAt") or 0),
    )
    return msg, data.get("sessionWebhook"), int(data.get("sessionWebhookExpiredTime") or 0)
