"""``dingskill chat``: talk to skills from a terminal, through the one Pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TextIO

from ..skills import Engine
from ..skills.conversation import Reply
from .local import LocalPipeline

__all__ = ["chat", "default_sender", "describe_reply", "describe_followups"]


def describe_reply(reply: Reply) -> str:
    """The decision line printed under each reply: intent, confidence, source, rule,
    alternatives, latency."""
    alts = ", ".join(f"{a} {p:.2f}" for a, p in reply.alternatives)
    return (
        f"  [{reply.intent} {reply.confidence:.2f} {reply.source}"
        f"{' ' + reply.rule if reply.rule else ''}{' | ' + alts if alts else ''}"
        f"{' | slots ' + json.dumps(reply.slots, ensure_ascii=False) if reply.slots else ''}"
        f" | {reply.latency_ms:.1f} ms]"
    )


def describe_followups(reply: Reply) -> list[str]:
    """One line per follow-up the runtime would send after this reply (not sent here)."""
    out = []
    for f in reply.followups:
        to = f"user {f['user']}" if f.get("user") else f"group {f.get('group')}"
        text = str(f.get("text", "")).replace("\n", " ")
        out.append(f"  -> follow-up to {to} (sent by the runtime): {text}")
    return out


def _prompted(prompt: str, out: TextIO):
    """Lines typed at ``prompt`` until end of input (Ctrl-D) or Ctrl-C."""
    while True:
        try:
            yield input(prompt)
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return


def default_sender() -> str:
    """The OS user's name (what ``dingskill chat`` calls the sender without ``--nick``)."""
    import getpass

    try:
        return getpass.getuser() or "you"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "you"


def chat(
    skills: list,
    lines: Iterable[str],
    out: TextIO,
    sender_id: str = "terminal",
    sender_nick: str = "",
    conversation_id: str = "terminal",
    group: bool = False,
    at_users: list[str] | None = None,
    echo: bool = False,
    as_json: bool = False,
    prompt: str = "",
    options=None,
) -> int:
    """Send each non-blank line as one user message of one conversation and write the
    replies to ``out`` (``as_json``: one JSON object a line, :meth:`Reply.to_dict` plus the
    sent ``text``). Returns the number of messages sent."""
    engine = Engine(skills, options=options) if options is not None else None
    local = LocalPipeline(skills, channel="terminal", engine=engine)
    sent = 0
    if prompt:
        lines = _prompted(prompt, out)
    for line in lines:
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        reply = local.send(
            text,
            sender_id=sender_id,
            sender_nick=sender_nick,
            conversation_id=conversation_id,
            conversation_type="group" if group else "single",
            at_users=list(at_users or []),
        )
        sent += 1
        if as_json:
            out.write(json.dumps({"sent": text, **reply.to_dict()}, ensure_ascii=False) + "\n")
        else:
            if echo:
                out.write(f"> {text}\n")
            out.write(reply.text + "\n" + describe_reply(reply) + "\n")
            for line in describe_followups(reply):
                out.write(line + "\n")
        out.flush()
    return sent
