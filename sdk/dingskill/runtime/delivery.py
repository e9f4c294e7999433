"""Where a reply goes: an AI card (skills holding ``Card.Streaming.Write``), the message's
session webhook, or - once the webhook expired - the robot OpenAPI for skills holding
``qyapi_robot_sendmsg``; then the reply's follow-up messages (``notify``: returned by a
handler or declared in ``skill.yaml``, see :mod:`dingskill.skills.notify`), also only within
``qyapi_robot_sendmsg`` (the manifest loader refuses a declared ``notify`` without it; this
check stays for handlers and as defence in depth). Used by the Stream channel and the broker worker alike."""

from __future__ import annotations

import logging
import time

from ..skills.conversation import Reply
from .proactive import PERMISSION, ProactiveError, RobotSender

__all__ = ["Delivery"]

log = logging.getLogger("dingskill.runtime")
EXPIRED_ERRCODES = (300001, 300002)


class Delivery:
    def __init__(
        self,
        skills,
        sender,
        cards,
        robot: RobotSender | None = None,
        metrics=None,
        chunks: int = 3,
        store=None,
        interactive_template: str | None = None,
    ) -> None:
        self.skills, self.sender, self.cards, self.robot = skills, sender, cards, robot
        self.metrics, self.chunks = metrics, max(1, chunks)
        self.store, self.interactive_template = store, interactive_template

    def _perms(self, skill_id: str | None) -> list[str]:
        return self.skills.permissions(skill_id) if self.skills is not None else []

    def _skill_section(self, skill_id: str | None, name: str) -> dict:
        for s in getattr(self.skills, "skills", []) or []:
            if s.manifest.id == skill_id:
                return dict(s.manifest.raw.get(name) or {})
        return {}

    def _count(self, metric: str, *labels: str) -> None:
        if self.metrics is not None:
            m = getattr(self.metrics, metric)
            (m.labels(*labels) if labels else m).inc()

    async def deliver(self, message, reply: Reply, webhook: str | None, expires_ms: int) -> bool:
        perms = self._perms(reply.skill_id)
        ok = await self._answer(message, reply, webhook, expires_ms, perms)
        if reply.followups:
            await self.followups(reply, perms)
        return ok

    async def _answer(self, message, reply, webhook, expires_ms, perms) -> bool:
        if (
            "Card.Streaming.Write" in perms
            and reply.format in ("text", "markdown")
            and not reply.error
            and self.cards is not None
        ):
            ai = self._skill_section(reply.skill_id, "ai_card")
            try:
                step = max(1, -(-len(reply.text) // self.chunks))
                chunks = [reply.text[i : i + step] for i in range(0, len(reply.text), step)] or [""]
                await self.cards.stream(
                    message, chunks, ai.get("template_id"), ai.get("content_key")
                )
                self._count("card_deliveries", "ai", "ok")
                return True
            except Exception as exc:  # noqa: BLE001 - fall back to the session webhook
                self._count("card_deliveries", "ai", "fallback")
                log.warning(
                    "AI card not delivered; replying through the webhook",
                    extra={"msg_id": message.msg_id, "error": str(exc)},
                )
        if reply.format == "card" and reply.card and "Card.Instance.Write" in perms:
            template = reply.card.get("template_id") or self.interactive_template
            if template and self.cards is not None and self.store is not None:
                from .cards import send_interactive

                try:
                    await send_interactive(self, message, reply, template)
                    self._count("card_deliveries", "interactive", "ok")
                    return True
                except Exception as exc:  # noqa: BLE001 - the webhook's action card instead
                    self._count("card_deliveries", "interactive", "fallback")
                    log.warning(
                        "interactive card not delivered; replying through the webhook",
                        extra={"msg_id": message.msg_id, "error": str(exc)},
                    )
        expired = not webhook or (expires_ms and expires_ms < time.time() * 1000)
        if not expired:
            at = message.sender_id if message.conversation_type == "group" else None
            result = await self.sender.send(webhook, reply, at_user=at)
            if result.ok:
                return True
            reply.error = f"reply failed after {result.attempts} attempt(s): {result.error}"
            expired = "expired" in (result.error or "") or "invalid session" in (result.error or "")
            if not expired:
                return False
        return await self._openapi(message, reply, perms)

    async def _openapi(self, message, reply: Reply, perms: list[str]) -> bool:
        """The session webhook is gone: the robot OpenAPI, if the skill may use it."""
        if self.robot is None or PERMISSION not in perms:
            reply.error = "session webhook expired" + (
                "" if PERMISSION in perms else f" (the skill does not hold {PERMISSION})"
            )
            self._count("openapi_messages", "reply", "refused")
            return False
        try:
            await self.robot.reply_to(message, reply)
        except Exception as exc:  # noqa: BLE001 - reported on the reply
            reply.error = f"session webhook expired; robot OpenAPI failed: {exc}"
            self._count("openapi_messages", "reply", "failed")
            return False
        reply.error = None
        self._count("openapi_messages", "reply", "ok")
        return True

    async def followups(self, reply: Reply, perms: list[str] | None = None) -> None:
        """The reply's follow-ups (``[{"user"|"group", "text", "format", "title"}]``);
        ``perms``: the skill's permissions, when the caller already looked them up."""
        if perms is None:
            perms = self._perms(reply.skill_id)
        if reply.skill_id is None and reply.source in ("handover", "fallback"):
            # the runtime's own follow-up: the handover note to the group the operator
            # configured (handover.group), not a skill's message
            perms = [*perms, PERMISSION]
        for item in reply.followups:
            if self.robot is None or PERMISSION not in perms:
                self._count("openapi_messages", "notify", "refused")
                log.warning(
                    "follow-up refused: the skill does not hold " + PERMISSION,
                    extra={"skill": reply.skill_id},
                )
                continue
            note = Reply(
                text=str(item.get("text", "")),
                format=item.get("format", "text"),
                title=item.get("title", ""),
                skill_id=reply.skill_id,
            )
            try:
                if item.get("user"):
                    await self.robot.to_users([str(item["user"])], note)
                elif item.get("group"):
                    await self.robot.to_group(str(item["group"]), note)
                else:
                    raise ProactiveError("a follow-up needs 'user' or 'group'")
                self._count("openapi_messages", "notify", "ok")
            except Exception as exc:  # noqa: BLE001 - logged, the reply itself went out
                self._count("openapi_messages", "notify", "failed")
                log.warning(
                    "follow-up not sent", extra={"skill": reply.skill_id, "error": str(exc)}
                )
