"""Where a reply goes: an AI card (skills holding ``Card.Streaming.Write``), the message's
session webhook, or - once the webhook expired - the robot OpenAPI for skills holding
``qyapi_robot_sendmsg``; then the reply's follow-up messages (``notify``: returned by a
handler or declared in ``skill.yaml``, see :mod:`dingskill.skills.notify`), also only within
``qyapi_robot_sendmsg`` (the manifest loader refuses a declared ``notify`` without it; this
check stays for handlers and as defence in depth). Used by the Stream channel and the broker worker alike.

The OpenAPI takes over on the webhook's error *codes* (:data:`EXPIRED_ERRCODES`), never on
its words. A reply that reaches nobody is never dropped silently: :meth:`Delivery.attempt`
says why (:class:`Undelivered`), the reason is on ``reply.error`` (the pipeline's audit
record), counted in ``dingskill_undelivered_replies_total{reason}`` and logged; the broker
worker dead-letters the permanent ones."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import Enum

from ..skills.conversation import Reply
from .proactive import PERMISSION, ProactiveError, RobotSender
from .replies import CardUnfinished

__all__ = ["EXPIRED_ERRCODES", "Delivery", "Outcome", "Undelivered"]

log = logging.getLogger("dingskill.runtime")
# errcodes of a session webhook the platform no longer knows: 300001 "session 不存在" (what it
# answers for an expired one), 300002 (the older reading the emulator can switch to)
EXPIRED_ERRCODES = (300001, 300002)


class Undelivered(str, Enum):
    """Why a reply reached nobody."""

    NO_PERMISSION = "no_permission"  # webhook gone; the skill lacks qyapi_robot_sendmsg
    NO_ROBOT = "no_robot"  # webhook gone; no robot OpenAPI configured
    OPENAPI_FAILED = "openapi_failed"  # webhook gone; the robot OpenAPI refused or failed
    WEBHOOK_REFUSED = "webhook_refused"  # the webhook refused the body (an errcode, a 4xx)
    WEBHOOK_FAILED = "webhook_failed"  # 5xx / unreachable after the retries
    WEBHOOK_UNCERTAIN = "webhook_uncertain"  # timed out or cut mid-request: maybe delivered
    CARD_UNFINISHED = "card_unfinished"  # an AI card reached the user but was not finished

    @property
    def permanent(self) -> bool:
        """Trying the same message again cannot help (or would answer the user twice)."""
        return self in (
            Undelivered.NO_PERMISSION,
            Undelivered.NO_ROBOT,
            Undelivered.WEBHOOK_REFUSED,
            Undelivered.CARD_UNFINISHED,
        )


@dataclass
class Outcome:
    """What became of one reply: delivered, or the reason it was not."""

    ok: bool
    reason: Undelivered | None = None

    def __bool__(self) -> bool:
        return self.ok


OK = Outcome(True)


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
        """True when the reply reached the user (see :meth:`attempt` for why not)."""
        return (await self.attempt(message, reply, webhook, expires_ms)).ok

    async def attempt(self, message, reply: Reply, webhook: str | None, expires_ms: int) -> Outcome:
        """Deliver the reply, then its follow-ups; an undelivered reply is recorded (its
        reason on ``reply.error``, the metric, a log line) and its :class:`Outcome` says why."""
        perms = self._perms(reply.skill_id)
        outcome = await self._answer(message, reply, webhook, expires_ms, perms)
        if not outcome.ok:
            self._undelivered(message, reply, outcome.reason)
        if reply.followups:
            await self.followups(reply, perms)
        return outcome

    def _undelivered(self, message, reply: Reply, reason: Undelivered) -> None:
        detail = reply.error or reason.value
        reply.error = f"undelivered ({reason.value}): {detail}"
        self._count("undelivered", reason.value)
        log.warning(
            "reply not delivered",
            extra={
                "msg_id": getattr(message, "msg_id", ""),
                "skill": reply.skill_id,
                "reason": reason.value,
                "error": detail,
            },
        )

    async def _answer(self, message, reply, webhook, expires_ms, perms) -> Outcome:
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
                return OK
            except CardUnfinished as exc:  # the user has the card: no text duplicate
                self._count("card_deliveries", "ai", "unfinished")
                reply.error = str(exc)
                return Outcome(False, Undelivered.CARD_UNFINISHED)
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
                    return OK
                except Exception as exc:  # noqa: BLE001 - the webhook's action card instead
                    self._count("card_deliveries", "interactive", "fallback")
                    log.warning(
                        "interactive card not delivered; replying through the webhook",
                        extra={"msg_id": message.msg_id, "error": str(exc)},
                    )
        expired = not webhook or (expires_ms and expires_ms < time.time() * 1000)
        gone = "session webhook expired"
        if not expired:
            at = message.sender_id if message.conversation_type == "group" else None
            result = await self.sender.send(webhook, reply, at_user=at)
            if result.ok:
                return OK
            reply.error = f"reply failed after {result.attempts} attempt(s): {result.error}"
            if result.errcode not in EXPIRED_ERRCODES:
                if result.errcode is not None or (result.status or 0) // 100 == 4:
                    return Outcome(False, Undelivered.WEBHOOK_REFUSED)
                if result.uncertain:
                    return Outcome(False, Undelivered.WEBHOOK_UNCERTAIN)
                return Outcome(False, Undelivered.WEBHOOK_FAILED)
            gone = f"session webhook gone (errcode {result.errcode})"
        return await self._openapi(message, reply, perms, gone)

    async def _openapi(self, message, reply: Reply, perms: list[str], gone: str) -> Outcome:
        """The session webhook is gone: the robot OpenAPI, if the skill may use it."""
        if self.robot is None or PERMISSION not in perms:
            self._count("openapi_messages", "reply", "refused")
            if self.robot is None:
                reply.error = f"{gone}; no robot OpenAPI configured"
                return Outcome(False, Undelivered.NO_ROBOT)
            reply.error = (
                f"{gone}; the skill does not hold {PERMISSION}, which replies after the "
                "webhook need"
            )
            return Outcome(False, Undelivered.NO_PERMISSION)
        try:
            await self.robot.reply_to(message, reply)
        except Exception as exc:  # noqa: BLE001 - reported on the reply
            reply.error = f"{gone}; robot OpenAPI failed: {exc}"
            self._count("openapi_messages", "reply", "failed")
            return Outcome(False, Undelivered.OPENAPI_FAILED)
        reply.error = None
        self._count("openapi_messages", "reply", "ok")
        return OK

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
