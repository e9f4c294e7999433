"""Follow-up messages of a response (``notify``): one shape for both sources.

A handler returns them (``{"text": ..., "notify": [...]}``); a template / HTTP-action response
declares them in ``skill.yaml`` (``notify:`` under the intent), where every string is a
sandboxed template seeing the reply's variables (``api``, ``slots``, ``message``, ...). Each
item is ``{"user": STAFF_ID}`` or ``{"group": OPEN_CONVERSATION_ID}`` plus ``text`` and,
optionally, ``format`` (``text`` | ``markdown``) and ``title``. The runtime sends them
through the robot OpenAPI after the reply, only for skills holding ``qyapi_robot_sendmsg``
(:mod:`dingskill.runtime.delivery`). An item whose recipient is empty is skipped with a log
line; one that cannot be rendered is skipped the same way: the reply itself is never lost."""

from __future__ import annotations

import logging

from .errors import TemplateError
from .templates import arender_tree

__all__ = ["PERMISSION", "TARGETS", "FORMATS", "MAX_FOLLOWUPS", "normalize", "render_notify"]

log = logging.getLogger("dingskill.skills")

PERMISSION = "qyapi_robot_sendmsg"
TARGETS = ("user", "group")
FORMATS = ("text", "markdown")
MAX_FOLLOWUPS = 10  # per reply, whichever source
MAX_TARGET = 200  # characters of a staff id / open conversation id


def normalize(item: object, where: str) -> dict | None:
    """One follow-up in the delivery shape ``{user|group, text, format, title}``, or None
    (logged) when it has no recipient or is malformed. ``where`` names it in the log."""
    if not isinstance(item, dict):
        log.warning("follow-up skipped: %s is not a mapping", where)
        return None
    targets = [t for t in TARGETS if t in item]
    if len(targets) > 1:
        log.warning("follow-up skipped: %s names both a user and a group", where)
        return None
    if not targets:
        log.warning("follow-up skipped: %s names no recipient (user or group)", where)
        return None
    target = targets[0]
    value = "" if item[target] is None else str(item[target]).strip()
    if not value:
        log.info("follow-up skipped: %s: its %s is empty", where, target)
        return None
    if len(value) > MAX_TARGET or any(ord(c) < 32 for c in value):
        log.warning(
            "follow-up skipped: %s: %s %r is not an id (control characters or over %d chars)",
            where,
            target,
            value[:40],
            MAX_TARGET,
        )
        return None
    text = item.get("text")
    if text is None or str(text) == "":
        log.warning("follow-up skipped: %s has no text", where)
        return None
    fmt = item.get("format") or "text"
    if fmt not in FORMATS:
        log.warning("follow-up skipped: %s: format %r is not text or markdown", where, fmt)
        return None
    return {target: value, "text": str(text), "format": fmt, "title": str(item.get("title") or "")}


def normalize_all(items: object, where: str) -> list[dict]:
    """A handler's ``notify`` list, normalized (at most :data:`MAX_FOLLOWUPS`)."""
    if items is None:
        return []
    if not isinstance(items, list):
        log.warning("follow-ups skipped: %s: 'notify' is not a list", where)
        return []
    if len(items) > MAX_FOLLOWUPS:
        log.warning(
            "follow-ups of %s: %d, only the first %d sent", where, len(items), MAX_FOLLOWUPS
        )
    out = [normalize(item, f"{where} notify[{i}]") for i, item in enumerate(items[:MAX_FOLLOWUPS])]
    return [f for f in out if f is not None]


async def render_notify(items: list[dict] | None, variables: dict, where: str) -> list[dict]:
    """Render a manifest ``notify`` list with the reply's ``variables``; items that cannot be
    rendered or whose recipient renders empty are skipped (logged), never raised."""
    out = []
    for i, item in enumerate((items or [])[:MAX_FOLLOWUPS]):
        name = f"{where}.notify[{i}]"
        try:
            rendered = {}
            for key in TARGETS:
                if key in item:
                    rendered[key] = await arender_tree(item[key], variables, mode="target")
            body = {k: item[k] for k in ("text", "title") if k in item}
            rendered.update(await arender_tree(body, variables) if body else {})
        except TemplateError as exc:
            log.warning("follow-up skipped: %s could not be rendered: %s", name, exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a follow-up never costs the reply
            log.warning("follow-up skipped: %s: %s: %s", name, type(exc).__name__, exc)
            continue
        if "format" in item:
            rendered["format"] = item["format"]
        followup = normalize(rendered, name)
        if followup is not None:
            out.append(followup)
    return out
