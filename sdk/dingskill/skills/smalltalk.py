"""Built-in small talk in Chinese and English: greeting, thanks, help / what can you do,
goodbye. A skill overrides one by declaring an intent of the same name (``greeting``,
``thanks``, ``help``, ``goodbye``) or a trigger rule that matches the message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import Enum

__all__ = ["SmallTalk", "match_small_talk", "small_talk_reply", "YES", "NO"]


class SmallTalk(str, Enum):
    GREETING = "greeting"
    THANKS = "thanks"
    HELP = "help"
    GOODBYE = "goodbye"


_WORDS = {
    SmallTalk.GREETING: "你好|您好|嗨|哈喽|哈啰|在吗|早上好|早安|下午好|晚上好|hi|hello|hey|hiya|"
    "good morning|good afternoon|good evening",
    SmallTalk.THANKS: "谢谢|谢谢你|谢谢您|多谢|感谢|谢啦|辛苦了|thanks|thank you|thx|ty|cheers",
    SmallTalk.HELP: "/help|/帮助|帮助|help|你能做什么|你会做什么|你会什么|你可以做什么|能做什么|"
    "怎么用|使用说明|what can you do|what do you do|how can you help|menu",
    SmallTalk.GOODBYE: "再见|拜拜|回头见|下次见|bye|goodbye|bye bye|see you|see ya",
}
_TAIL = r"(?:呀|啊|哦|喔|啦|了|哈|呢|吧|there|so much|a lot|very much|bot|all)?"
_PATTERNS = {
    kind: re.compile(rf"^(?:{words})\s*{_TAIL}$", re.IGNORECASE) for kind, words in _WORDS.items()
}
# any kind at all: one match turns away what is no small talk (most pieces of most messages)
_ANY = re.compile(rf"^(?:{'|'.join(_WORDS.values())})\s*{_TAIL}$", re.IGNORECASE)
_PUNCT = re.compile(r"[\s!！。.?？~～,，、:：;；…😀-🙏]+")

YES = re.compile(r"^(是|是的|好|好的|对|要|可以|行|嗯|yes|y|yeah|yep|ok|okay|sure)$", re.I)
NO = re.compile(r"^(否|不|不是|不要|不用|继续|no|n|nope|continue)$", re.I)

REPLIES = {
    SmallTalk.GREETING: {
        "zh": "您好！我可以帮您处理：{skills}。有什么需要？",
        "en": "Hi! I can help with: {skills}. What do you need?",
    },
    SmallTalk.THANKS: {"zh": "不客气！还有什么可以帮您？", "en": "You're welcome! Anything else?"},
    SmallTalk.HELP: {
        "zh": "我可以帮您处理：\n{lines}\n办理中的事项随时可以说「取消」退出。",
        "en": "I can help with:\n{lines}\nSay “cancel” at any time to leave a form.",
    },
    SmallTalk.GOODBYE: {"zh": "再见，有需要随时找我！", "en": "Bye! Message me any time."},
}


def _bare(text: str) -> str:
    return _PUNCT.sub(" ", text).strip().lower()


def match_small_talk(text: str) -> SmallTalk | None:
    """The small-talk kind ``text`` is (the whole message, punctuation aside), or None. A
    message of several small-talk pieces ("谢谢，再见", "hi, what can you do") is the kind of
    its last piece."""
    bare = _bare(text)
    if text.strip().lower().startswith("/"):
        bare = "/" + bare.lstrip("/")
    kind = _kind(bare)
    if kind is not None:
        return kind
    pieces = bare.split(" ")
    if len(pieces) < 2:
        return None
    last = None
    for piece in _pieces(pieces):  # made one at a time: the first that is no small talk ends it
        kind = _kind(piece)
        if kind is None:
            return None
        last = kind
    return last


def _kind(piece: str) -> SmallTalk | None:
    """The small-talk kind the whole of ``piece`` is, or None."""
    if _ANY.match(piece) is None:
        return None
    return next((k for k, p in _PATTERNS.items() if p.match(piece)), None)


def _pieces(words: list[str]) -> Iterator[str]:
    """``words`` regrouped into the longest runs that are small talk ("thank you", "see
    you"), left to right; a word no run starts with stays alone."""
    i = 0
    while i < len(words):
        end = next(
            (j for j in range(len(words), i, -1) if _ANY.match(" ".join(words[i:j]))),
            i + 1,
        )
        yield " ".join(words[i:end])
        i = end


def small_talk_reply(kind: SmallTalk, lang: str, skills: list) -> str:
    """The built-in answer in ``lang`` (``zh`` / ``en``), naming what ``skills`` do."""
    names = (
        "、".join(s.manifest.name for s in skills)
        if lang == "zh"
        else ", ".join(s.manifest.name for s in skills)
    )
    lines = "\n".join(
        f"- {s.manifest.name}：{s.manifest.description}"
        if lang == "zh"
        else f"- {s.manifest.name}: {s.manifest.description}"
        for s in skills
    )
    return REPLIES[kind][lang].format(skills=names or "-", lines=lines or "-")
