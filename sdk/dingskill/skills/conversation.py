"""Message, reply and context-key types shared by every channel and the engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Message:
    """One incoming user message, whatever channel it came from."""

    text: str
    sender_id: str = "user"
    sender_nick: str = ""
    conversation_id: str = "local"
    conversation_type: str = "single"  # "single" | "group"
    at_users: list[str] = field(default_factory=list)
    msg_id: str = ""
    channel: str = "local"  # widget | terminal | stream | webhook | local
    create_at: int = 0  # milliseconds since the epoch
    client_ip: str = ""  # the HTTP client's address (webhook mode), for the audit record
    # DingTalk message type: text | richText | audio | picture | file | video; ``text`` holds
    # what can be read (the recognition of a voice message, the text parts of rich text)
    msgtype: str = "text"
    # pictures / files / videos / voice recordings: {"type", "download_code", "file_name", ...}
    attachments: list[dict] = field(default_factory=list)
    robot_code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reply:
    """What the bot answers to one message, with the decision that produced it."""

    text: str
    format: str = "text"  # "text" | "markdown" | "card"
    card: dict | None = None
    title: str = ""
    skill_id: str | None = None
    intent: str = "oos"
    confidence: float = 0.0
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    source: str = "model"  # rule | model | dialogue | fallback | ratelimit | error
    rule: str | None = None
    slots: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    latency_ms: float = 0.0
    error: str | None = None
    # follow-ups (a handler's or the manifest's ``notify``), sent after the reply through the
    # robot OpenAPI: [{"user" | "group": id, "text", "format", "title"}] (skills/notify.py)
    followups: list[dict] = field(default_factory=list)
    # the entities found in the message ({start, end, entity, value, confidence, source,
    # text}) and, within a form, the commands it became ({act, slot, value, ...})
    entities: list[dict] = field(default_factory=list)
    commands: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["alternatives"] = [list(a) for a in self.alternatives]
        return data


def context_key(message: Message) -> str:
    """Key of the conversation context: per chat, and per user within a group chat."""
    if message.conversation_type == "group":
        return f"{message.conversation_id}:{message.sender_id}"
    return message.conversation_id
