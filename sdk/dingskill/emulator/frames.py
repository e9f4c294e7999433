"""Frames and payloads shaped as DingTalk's Stream mode sends them.

Sources: the protocol page (developerpedia ``docs/learn/stream/protocol.md``), the platform's
"receive message" document it links, and the four official SDKs (Python ``chatbot.py`` /
``frames.py`` / ``card_callback.py`` / ``graph.py``, Go ``chatbot/model.go``, Java
``app-stream-protocol``, Node ``src/client.ts``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "CARD_CALLBACK_TOPIC",
    "EVENT_TOPIC",
    "GRAPH_TOPIC",
    "MSG_TYPES",
    "UNKNOWN_PLACEHOLDER",
    "ROBOT_DELEGATE_TOPIC",
    "ROBOT_TOPIC",
    "FrameType",
    "RobotMessage",
    "callback_frame",
    "event_frame",
    "robot_payload",
    "strip_at_name",
    "system_frame",
]

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
ROBOT_DELEGATE_TOPIC = "/v1.0/im/bot/messages/delegate"
CARD_CALLBACK_TOPIC = "/v1.0/card/instances/callback"
GRAPH_TOPIC = "/v1.0/graph/api/invoke"
EVENT_TOPIC = "*"  # the only EVENT subscription the platform accepts ("仅支持星号")

# Robot message types of the platform's "receive message" document.
MSG_TYPES = ("text", "richText", "picture", "audio", "video", "file", "unknownMsgType")
# What the platform puts in ``content.unknownMsgType`` for a message a robot cannot receive
# (a sticker, a location, ...): a short placeholder, not the message itself.
UNKNOWN_PLACEHOLDER = "[暂不支持的消息类型]"


class FrameType(str, Enum):
    """The ``type`` of a frame the platform pushes."""

    SYSTEM = "SYSTEM"
    EVENT = "EVENT"
    CALLBACK = "CALLBACK"


def strip_at_name(text: str, bot_name: str) -> str:
    """The content the platform delivers for a group message typed as ``text``.

    The platform removes the bot's ``@name`` but keeps the blank after it: the documented
    content of "@bot 测试数据" is ``" 测试数据"``. Only the first mention of the bot goes.
    """
    mention = f"@{bot_name}"
    i = text.find(mention)
    return text if i < 0 else text[:i] + text[i + len(mention) :]


def at_name_first(parts: list[dict], bot_name: str) -> list[dict]:
    """A group ``richText`` as the platform delivers it: unlike ``text``, the ``@name`` is not
    removed; it stays at the start of the first text part ("@办公助手 " + what followed)."""
    mention = f"@{bot_name}"
    parts = [dict(p) if isinstance(p, dict) else p for p in parts]
    for p in parts:
        if isinstance(p, dict) and isinstance(p.get("text"), str):
            if mention not in p["text"]:
                p["text"] = f"{mention} {p['text']}"
            return parts
    return [{"text": f"{mention} "}, *parts]


@dataclass
class RobotMessage:
    """What a user sends the bot; the emulator turns it into the documented payload."""

    text: str = ""
    msgtype: str = "text"
    sender_id: str = "user-0001"
    sender_nick: str = "测试用户"
    staff_id: str | None = None
    conversation_id: str | None = None
    conversation_type: str = "single"  # "single" (1:1) | "group"
    conversation_title: str = "测试群"
    at_bot: bool = True
    at_users: list[dict] | None = None
    external: bool = False  # a sender outside the bot's organisation (no staff id)
    is_admin: bool = False
    # media (picture / audio / video / file / richText)
    download_code: str | None = None
    recognition: str | None = None  # audio: the platform's own speech-to-text
    duration: int | None = None  # audio / video, milliseconds
    file_name: str | None = None
    video_type: str = "mp4"
    rich_text: list[dict] | None = None  # richText: [{"text": ...}, {"type": "picture", ...}]
    extra: dict = field(default_factory=dict)  # extra payload fields, merged last


def robot_payload(
    m: RobotMessage,
    *,
    msg_id: str,
    robot_code: str,
    bot_name: str,
    webhook: str,
    webhook_expires_ms: int,
    create_at: int,
    conversation_id: str,
    corp_id: str = "ding-emulator-corp",
    external_corp_id: str = "ding-external-corp",
) -> dict:
    """The ``data`` of a robot-message CALLBACK (the fields ``ChatbotMessage`` reads)."""
    group = m.conversation_type == "group"
    staff = None if m.external else (m.staff_id or m.sender_id)
    body: dict = {
        "conversationId": conversation_id,
        "chatbotCorpId": corp_id,
        "chatbotUserId": f"$:LWCP_v1:${robot_code}",
        "msgId": msg_id,
        "senderNick": m.sender_nick,
        "isAdmin": m.is_admin,
        "sessionWebhookExpiredTime": webhook_expires_ms,
        "createAt": create_at,
        "senderCorpId": external_corp_id if m.external else corp_id,
        "conversationType": "2" if group else "1",
        "senderId": f"$:LWCP_v1:${m.sender_id}",
        "sessionWebhook": webhook,
        "robotCode": robot_code,
        "msgtype": m.msgtype,
    }
    if staff is not None:
        body["senderStaffId"] = staff
    code = m.download_code or f"dc-{uuid.uuid4().hex}"
    if m.msgtype == "text":
        text = strip_at_name(m.text, bot_name) if group and m.at_bot else m.text
        body["text"] = {"content": text}
    elif m.msgtype == "richText":
        parts = m.rich_text
        if parts is None:
            parts = [{"text": m.text}] if m.text else []
        if group and m.at_bot:
            parts = at_name_first(parts, bot_name)
        body["content"] = {"richText": parts}
    elif m.msgtype == "picture":
        body["content"] = {"pictureDownloadCode": f"p{code}", "downloadCode": code}
    elif m.msgtype == "audio":
        body["content"] = {
            "duration": m.duration if m.duration is not None else 3000,
            "downloadCode": code,
            "recognition": m.recognition if m.recognition is not None else m.text,
        }
    elif m.msgtype == "video":
        body["content"] = {
            "duration": str(m.duration if m.duration is not None else 5000),
            "downloadCode": code,
            "videoType": m.video_type,
        }
    elif m.msgtype == "file":
        body["content"] = {
            "spaceId": "emulator-space",
            "fileName": m.file_name or "文件.pdf",
            "downloadCode": code,
            "fileId": f"f{uuid.uuid4().hex[:12]}",
        }
    elif m.msgtype == "unknownMsgType":
        body["content"] = {"unknownMsgType": m.text or UNKNOWN_PLACEHOLDER}
    else:
        raise ValueError(f"unknown msgtype {m.msgtype!r}; one of {', '.join(MSG_TYPES)}")
    if group:
        body["conversationTitle"] = m.conversation_title
        body["isInAtList"] = m.at_bot
        body["atUsers"] = (
            m.at_users
            if m.at_users is not None
            else ([{"dingtalkId": f"$:LWCP_v1:${robot_code}"}] if m.at_bot else [])
        )
    body.update(m.extra)
    return body


def _frame(ftype: FrameType, headers: dict, data: dict | str) -> str:
    return json.dumps(
        {
            "specVersion": "1.0",
            "type": ftype.value,
            "headers": headers,
            "data": data if isinstance(data, str) else json.dumps(data, ensure_ascii=False),
        },
        ensure_ascii=False,
    )


def callback_frame(
    app_id: str,
    connection_id: str,
    frame_id: str,
    data: dict | str,
    now_ms: int,
    topic: str = ROBOT_TOPIC,
) -> str:
    """A CALLBACK frame (robot message, card callback, graph request)."""
    return _frame(
        FrameType.CALLBACK,
        {
            "appId": app_id,
            "connectionId": connection_id,
            "contentType": "application/json",
            "messageId": frame_id,
            "time": str(now_ms),
            "topic": topic,
        },
        data,
    )


def event_frame(
    connection_id: str,
    frame_id: str,
    data: dict,
    now_ms: int,
    *,
    event_type: str,
    event_id: str,
    corp_id: str,
    born_ms: int,
    unified_app_id: str,
) -> str:
    """An EVENT frame with the event headers of the protocol page."""
    return _frame(
        FrameType.EVENT,
        {
            "connectionId": connection_id,
            "contentType": "application/json",
            "messageId": frame_id,
            "time": str(now_ms),
            "topic": EVENT_TOPIC,
            "eventType": event_type,
            "eventId": event_id,
            "eventCorpId": corp_id,
            "eventBornTime": str(born_ms),
            "eventUnifiedAppId": unified_app_id,
        },
        data,
    )


def system_frame(
    topic: str,
    connection_id: str,
    now_ms: int,
    data: dict | None = None,
    frame_id: str | None = None,
) -> str:
    """A SYSTEM frame: ``ping`` (data ``{"opaque"}``) or ``disconnect`` (data ``{"reason"}``)."""
    return _frame(
        FrameType.SYSTEM,
        {
            "connectionId": connection_id,
            "contentType": "application/json",
            "messageId": frame_id or uuid.uuid4().hex,
            "time": str(now_ms),
            "topic": topic,
        },
        data or {},
    )
