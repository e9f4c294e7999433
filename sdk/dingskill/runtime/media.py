"""Messages without readable text (pictures, files, videos, types the runtime does not know).

A skill that declares it handles a type (``media: {types: [picture, file], handler: name}``
in skill.yaml) gets the message: its handler receives ``message["attachments"]`` (each with
the ``download_code`` that :func:`dingskill.runtime.files.download_message_file` fetches,
size-limited). Otherwise the user gets a polite answer saying what the bot can read,
configurable per language (``messages.unsupported`` in the runtime config). Never silent."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..skills.conversation import Message, Reply
from ..text import detect_language

__all__ = ["MediaPolicy", "UNSUPPORTED", "media_skill"]

UNSUPPORTED = {
    "zh": "抱歉，我暂时看不了{kind}，只能读文字和语音。请用文字说说您需要什么帮助吧。",
    "en": "Sorry, I can't open {kind} yet: I read text and voice messages. "
    "Could you tell me in words what you need?",
}
KIND_NAMES = {
    "zh": {"picture": "图片", "file": "文件", "video": "视频"},
    "en": {"picture": "pictures", "file": "files", "video": "videos"},
}


def media_skill(engine, msgtype: str):
    """(skill, handler name) of the first skill declaring it handles ``msgtype``, or None."""
    for skill in getattr(engine, "skills", []):
        media = skill.manifest.raw.get("media") or {}
        if msgtype in media.get("types", []) and media.get("handler"):
            return skill, media["handler"]
    return None


@dataclass
class MediaPolicy:
    """What the runtime answers to messages no skill can read."""

    replies: dict = field(default_factory=lambda: dict(UNSUPPORTED))
    default_language: str = "zh"

    def language(self, context: dict) -> str:
        """The language the user last wrote in (the default before any text)."""
        for turn in reversed(context.get("history") or []):
            if (turn.get("user") or "").strip():
                return "en" if detect_language(turn["user"]) == "en" else "zh"
        return self.default_language

    def polite(self, message: Message, context: dict) -> Reply:
        lang = self.language(context)
        kind = KIND_NAMES[lang].get(message.msgtype, message.msgtype or "?")
        if message.msgtype not in KIND_NAMES[lang]:
            kind = "这类消息" if lang == "zh" else "this kind of message"
        text = self.replies.get(lang) or UNSUPPORTED[lang]
        return Reply(
            text=text.replace("{kind}", kind),
            source="fallback",
            intent="unsupported_message",
            error=None,
        )

    async def answer(self, engine, message: Message, context: dict) -> tuple[Reply, str]:
        """Hand the message to the skill that declared its type, or answer politely."""
        found = media_skill(engine, message.msgtype)
        if found is None:
            return self.polite(message, context), "unsupported"
        skill, handler = found
        reply = await engine._execute(
            skill, f"media:{message.msgtype}", {"handler": handler}, {}, message, context, 1.0
        )
        return reply, ("error" if reply.error else "ok")
