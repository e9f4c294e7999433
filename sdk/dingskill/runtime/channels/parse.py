"""Robot-message payload (ChatbotMessage JSON) -> :class:`Message`, validated.

Every documented message type is read: ``text`` (``text.content``), ``richText`` (the text
parts of ``content.richText``, its pictures as attachments), ``audio`` (the platform's own
speech-to-text ``content.recognition``, the recording as an attachment), ``picture``,
``file`` and ``video`` (attachments carrying the ``downloadCode`` that
``/v1.0/robot/messageFiles/download`` turns into a URL)."""

from __future__ import annotations

from ...skills.conversation import Message

__all__ = ["FrameError", "parse_robot_message", "MEDIA_TYPES", "KNOWN_TYPES"]

MAX_PAYLOAD_CHARS = 2_000_000
MEDIA_TYPES = ("picture", "file", "video")
KNOWN_TYPES = ("text", "richText", "audio", *MEDIA_TYPES)


class FrameError(ValueError):
    """A frame or payload that is not a robot message this runtime can answer."""


def _content(data: dict, kind: str) -> dict:
    content = data.get("content")
    if not isinstance(content, dict):
        raise FrameError(f"msgtype {kind}: field content is missing or not an object")
    return content


def _attachment(kind: str, content: dict) -> dict:
    code = content.get("downloadCode") or content.get("pictureDownloadCode")
    if not isinstance(code, str) or not code:
        raise FrameError(f"msgtype {kind}: field content.downloadCode is missing")
    att = {"type": kind, "download_code": code}
    for src, dst in (
        ("fileName", "file_name"),
        ("fileId", "file_id"),
        ("spaceId", "space_id"),
        ("duration", "duration"),
        ("videoType", "video_type"),
    ):
        if content.get(src) not in (None, ""):
            att[dst] = content[src]
    return att


def _text_and_attachments(data: dict, kind: str) -> tuple[str, list[dict]]:
    if kind == "text":
        text = (data.get("text") or {}).get("content")
        if not isinstance(text, str):
            raise FrameError("field text.content is missing or not a string")
        return text, []
    if kind == "richText":
        parts = _content(data, kind).get("richText")
        if not isinstance(parts, list):
            raise FrameError("msgtype richText: field content.richText is missing or not a list")
        texts, atts = [], []
        for part in parts:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("downloadCode") or part.get("pictureDownloadCode"):
                atts.append(_attachment(part.get("type") or "picture", part))
        return "\n".join(t for t in texts if t.strip()), atts
    if kind == "audio":
        content = _content(data, kind)
        recognition = content.get("recognition")
        if not isinstance(recognition, str):
            raise FrameError("msgtype audio: field content.recognition is missing")
        atts = [_attachment("audio", content)] if content.get("downloadCode") else []
        return recognition, atts
    if kind in MEDIA_TYPES:
        return "", [_attachment(kind, _content(data, kind))]
    return "", []


def parse_robot_message(data: dict, channel: str) -> tuple[Message, str | None, int]:
    """Returns (message, session webhook, webhook expiry ms). A message type this runtime
    does not know is returned with ``msgtype`` set and no text, so it gets a polite answer.
    Any malformed payload (wrong types anywhere) raises :class:`FrameError`."""
    try:
        return _parse(data, channel)
    except FrameError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, OverflowError) as exc:
        raise FrameError(f"malformed robot message ({type(exc).__name__}: {exc})") from None


def _str(value) -> str:
    return value if isinstance(value, str) else ""


def _parse(data: dict, channel: str) -> tuple[Message, str | None, int]:
    if not isinstance(data, dict):
        raise FrameError("payload is not a JSON object")
    kind = data.get("msgtype", "text")
    if not isinstance(kind, str):
        raise FrameError("field msgtype is not a string")
    for f in ("msgId", "conversationId", "senderId"):
        if not isinstance(data.get(f), str) or not data[f]:
            raise FrameError(f"field {f} is missing")
    text, attachments = _text_and_attachments(data, kind)
    ctype = "group" if str(data.get("conversationType")) == "2" else "single"
    at_users = [
        _str(u.get("dingtalkId")) or _str(u.get("staffId"))
        for u in data.get("atUsers") or []
        if isinstance(u, dict)
    ]
    msg = Message(
        text=text,
        sender_id=_str(data.get("senderStaffId")) or data["senderId"],
        sender_nick=_str(data.get("senderNick")),
        conversation_id=data["conversationId"],
        conversation_type=ctype,
        at_users=at_users,
        msg_id=data["msgId"],
        channel=channel,
        create_at=int(data.get("createAt") or 0),
        msgtype=kind,
        attachments=attachments,
        robot_code=str(data.get("robotCode") or ""),
    )
    hook = data.get("sessionWebhook")
    return (
        msg,
        hook if isinstance(hook, str) else None,
        int(data.get("sessionWebhookExpiredTime") or 0),
    )
