"""Messages the bot starts: the robot OpenAPI (``qyapi_robot_sendmsg``).

``/v1.0/robot/oToMessages/batchSend`` writes to users 1:1 (by staff id),
``/v1.0/robot/groupMessages/send`` to a group (by its open conversation id), each with a
``msgKey`` (sampleText, sampleMarkdown, sampleActionCard) and its ``msgParam`` as a JSON
string, ``robotCode`` = the app's client id. Used by ``dingskill send``, by skills that
hold ``qyapi_robot_sendmsg`` (handler follow-ups), and for replies that are ready after the
message's session webhook expired."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..skills.conversation import Reply
from ..skills.notify import PERMISSION
from .replies import CardDeliveryError, OpenApi

__all__ = ["RobotSender", "ProactiveError", "PERMISSION", "message_param"]


class ProactiveError(RuntimeError):
    """The platform refused a proactive message (or the skill may not send one)."""


def message_param(reply: Reply) -> tuple[str, dict]:
    """(msgKey, msgParam) of a reply, as the robot OpenAPI's message templates want them."""
    if reply.format == "markdown":
        return "sampleMarkdown", {"title": reply.title or reply.text[:20], "text": reply.text}
    if reply.format == "card" and reply.card:
        card = reply.card
        buttons = card.get("buttons", [])
        param = {
            "title": card.get("title") or reply.title or "card",
            "text": card.get("text") or reply.text,
        }
        for i, b in enumerate(buttons[:5], 1):
            param[f"actionTitle{i}"] = b.get("title", "")
            param[f"actionURL{i}"] = b.get("url") or (
                "dtmd://dingtalkclient/sendMessage?content="
                + str(b.get("action", b.get("title", "")))
            )
        return (
            f"sampleActionCard{max(1, min(len(buttons), 5))}" if buttons else "sampleMarkdown",
            param,
        )
    return "sampleText", {"content": reply.text}


@dataclass
class SendResult:
    ok: bool
    detail: dict


class RobotSender:
    """Proactive messages through the robot OpenAPI of one app."""

    def __init__(self, api: OpenApi, robot_code: str) -> None:
        self.api, self.robot_code = api, robot_code

    async def to_users(self, user_ids: list[str], reply: Reply) -> dict:
        key, param = message_param(reply)
        try:
            data = await self.api.call(
                "POST",
                "/v1.0/robot/oToMessages/batchSend",
                {
                    "robotCode": self.robot_code,
                    "userIds": list(user_ids),
                    "msgKey": key,
                    "msgParam": json.dumps(param, ensure_ascii=False),
                },
            )
        except CardDeliveryError as exc:
            raise ProactiveError(str(exc)) from None
        bad = (data.get("invalidStaffIdList") or []) + (data.get("flowControlledStaffIdList") or [])
        if bad:
            raise ProactiveError(f"not sent to {', '.join(bad)} (invalid or flow-controlled)")
        return data

    async def to_group(self, open_conversation_id: str, reply: Reply) -> dict:
        key, param = message_param(reply)
        try:
            return await self.api.call(
                "POST",
                "/v1.0/robot/groupMessages/send",
                {
                    "robotCode": self.robot_code,
                    "openConversationId": open_conversation_id,
                    "msgKey": key,
                    "msgParam": json.dumps(param, ensure_ascii=False),
                },
            )
        except CardDeliveryError as exc:
            raise ProactiveError(str(exc)) from None

    async def reply_to(self, message, reply: Reply) -> dict:
        """Answer ``message`` without its session webhook: 1:1 to the sender, or the group."""
        if message.conversation_type == "group":
            return await self.to_group(message.conversation_id, reply)
        return await self.to_users([message.sender_id], reply)


async def send(
    endpoint: str,
    app_key: str,
    app_secret: str,
    text: str,
    user: str | None = None,
    group: str | None = None,
    markdown_title: str | None = None,
) -> dict:
    """One proactive message (``dingskill send``): to a user by staff id or to a group."""
    if bool(user) == bool(group):
        raise ProactiveError(
            "give exactly one of a user (staff id) or a group (open conversation id)"
        )
    reply = Reply(
        text=text, format="markdown" if markdown_title else "text", title=markdown_title or ""
    )
    api = OpenApi(endpoint, app_key, app_secret)
    try:
        robot = RobotSender(api, app_key)
        return await (robot.to_users([user], reply) if user else robot.to_group(group, reply))
    finally:
        await api.close()
