"""EVENT frames handed to skills: the event types a runtime subscribes to
(``events.subscribe``) go to every skill whose ``events`` section names the type; its
template (or handler) answer is posted to the event's group through the robot OpenAPI,
within the skill's ``qyapi_robot_sendmsg`` permission. For example a member joining a group
(``chat_add_member``) gets a welcome."""

from __future__ import annotations

from ..skills.conversation import Reply
from ..skills.templates import render
from .proactive import PERMISSION

__all__ = ["handle_event", "event_variables"]


def _users(data: dict) -> list[str]:
    for key in ("UserId", "userIds", "userId", "users", "StaffIds"):
        v = data.get(key)
        if isinstance(v, list):
            return [str(u) for u in v]
        if isinstance(v, str) and v:
            return [u for u in v.split(",") if u]
    return []


def event_variables(event_type: str, data: dict) -> dict:
    users = _users(data)
    names = data.get("UserNames") or data.get("userNames") or users
    return {
        "event": {"type": event_type, **{k: v for k, v in data.items() if isinstance(k, str)}},
        "users": users,
        "names": "、".join(str(n) for n in names) if isinstance(names, list) else str(names),
        "group": str(
            data.get("openConversationId")
            or data.get("OpenConversationId")
            or data.get("ChatId")
            or ""
        ),
    }


async def handle_event(channel, event_type: str, data: dict) -> bool:
    """Give the event to the skills that declare it; True when one of them answered."""
    from .channels.stream import event_message

    engine = channel.pipeline.engine_provider()
    variables = event_variables(event_type, data)
    sent = False
    for skill in engine.skills:
        spec = (skill.manifest.raw.get("events") or {}).get(event_type)
        if not spec:
            continue
        if PERMISSION not in skill.manifest.permissions:
            raise PermissionError(
                f"{skill.manifest.id} answers {event_type} but lacks {PERMISSION}"
            )
        if "handler" in spec:
            message = event_message(event_type, data)
            reply = await engine._execute(
                skill,
                f"event:{event_type}",
                {"handler": spec["handler"]},
                dict(variables["event"]),
                message,
                {},
                1.0,
            )
            if reply.error:
                raise RuntimeError(reply.error)
        else:
            template = spec["template"]
            text = template[0] if isinstance(template, list) else template
            reply = Reply(text=render(text, variables), skill_id=skill.manifest.id)
        if not variables["group"]:
            raise ValueError(f"event {event_type} names no group (openConversationId)")
        await channel.robot.to_group(variables["group"], reply)
        if channel.audit is not None:
            channel.audit.record(
                "system",
                skill.manifest.id,
                "event",
                "ok",
                event=event_type,
                group=variables["group"],
            )
        sent = True
    return sent
