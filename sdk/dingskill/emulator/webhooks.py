"""The session webhook (``POST /robot/sendBySession?session=``): replies to one message.

It takes the webhook message types (``text``, ``markdown``, ``actionCard``, ``link``,
``feedCard``) with their required fields, and a graph/agent reply with
``contentType: ai_card`` (what the Python SDK's ``GraphHandler.reply_markdown`` posts). It
refuses the robot OpenAPI's ``msgKey`` names (``sampleText``, ``sampleMarkdown``, ...): those
exist only on ``/v1.0/robot/...``. It lives 90 minutes (``WEBHOOK_TTL_MS``).

A session the platform does not know - never issued, or expired - answers HTTP 200 with
``{"errcode": 300001, "errmsg": "session 不存在"}``: what bots in the field get from an expired
webhook (reported e.g. in agentscope-ai/QwenPaw issue #2221, "errcode=300001 errmsg=session
不存在", a reply sent hours after the message). ``expired_webhook_errcode=300002`` switches an
expired (but issued) session to the older emulator's reading, ``300002`` "session 已过期".
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse

from .state import clock_ns, now_ms

__all__ = [
    "EXPIRED_ERRCODES",
    "SESSION_UNKNOWN",
    "WEBHOOK_TYPES",
    "Webhooks",
    "check_webhook_body",
]

SESSION_UNKNOWN = {"errcode": 300001, "errmsg": "session 不存在"}
# errcode -> body of an expired session (300001: documented default; 300002: the switch)
EXPIRED_ERRCODES = {
    300001: SESSION_UNKNOWN,
    300002: {"errcode": 300002, "errmsg": "session 已过期"},
}

# msgtype -> required fields of its object
WEBHOOK_TYPES = {
    "text": ("content",),
    "markdown": ("title", "text"),
    "actionCard": ("title", "text"),
    "link": ("title", "text", "messageUrl"),
    "feedCard": ("links",),
}


def check_webhook_body(body) -> str | None:
    """None when the platform takes ``body`` on a session webhook, else its error message."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    if body.get("contentType") == "ai_card":
        content = body.get("content")
        if not isinstance(content, dict) or not content.get("templateId"):
            return "ai_card reply: content.templateId is required"
        if not isinstance(content.get("cardData"), dict):
            return "ai_card reply: content.cardData (object) is required"
        return None
    if "msgKey" in body or "msgParam" in body:
        return (
            "msgKey/msgParam belong to the robot OpenAPI (/v1.0/robot/...); "
            "the session webhook takes msgtype + its object"
        )
    kind = body.get("msgtype")
    if isinstance(kind, str) and kind.startswith("sample"):
        return (
            f"msgtype {kind!r} is a robot OpenAPI msgKey; the session webhook takes "
            f"{', '.join(WEBHOOK_TYPES)}"
        )
    if kind not in WEBHOOK_TYPES:
        return f"unsupported msgtype {kind!r}; one of {', '.join(WEBHOOK_TYPES)}"
    obj = body.get(kind)
    if not isinstance(obj, dict):
        return f"field {kind!r} (object) is required for msgtype {kind}"
    missing = [f for f in WEBHOOK_TYPES[kind] if obj.get(f) in (None, "")]
    if kind == "actionCard" and not missing:
        if not (obj.get("singleTitle") and obj.get("singleURL")) and not obj.get("btns"):
            missing.append("singleTitle+singleURL or btns")
    if missing:
        return f"{kind}: missing {', '.join(missing)}"
    return None


class Webhooks:
    """Mixin of :class:`~dingskill.emulator.Emulator`: session webhooks and their replies."""

    def _new_session(
        self, msg_id: str, app: str, ttl_ms: int, now: int | None = None
    ) -> tuple[str, int]:
        """A session webhook for ``msg_id`` living ``ttl_ms`` from ``now`` (the message's
        createAt): the protocol page's sample message (developerpedia
        ``docs/learn/stream/protocol.md``) gives ``sessionWebhookExpiredTime`` 90 min after
        its ``createAt``; the SDKs only pass both fields on to the handler."""
        import secrets

        session = secrets.token_urlsafe(16)
        expires = (now_ms() if now is None else now) + ttl_ms
        self.sessions[session] = (msg_id, expires, app)
        return f"{self.url}/robot/sendBySession?session={session}", expires

    async def _session_webhook(self, request: Request):
        session = request.query_params.get("session", "")
        entry = self.sessions.get(session)
        if entry is None:
            self.counters["webhook_unknown_session"] += 1
            return JSONResponse(SESSION_UNKNOWN, status_code=200)
        if self.faults["webhook_500"] > 0:
            self.faults["webhook_500"] -= 1
            return JSONResponse({"errcode": -1, "errmsg": "system busy"}, status_code=500)
        if self.faults["webhook_hang"] > 0:
            self.faults["webhook_hang"] -= 1
            self.counters["webhook_hangs"] += 1
            try:
                await asyncio.sleep(self.faults["hang_seconds"])
            finally:
                self.counters["webhook_hangs_ended"] += 1
        msg_id, expires = entry[0], entry[1]  # (msg_id, expiry ms[, app])
        if now_ms() > expires:
            self.counters["webhook_unknown_session"] += 1
            return JSONResponse(EXPIRED_ERRCODES[self.expired_webhook_errcode], status_code=200)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"errcode": 40035, "errmsg": "body is not JSON"}, status_code=400)
        problem = check_webhook_body(body)
        if problem is not None:
            self.counters["webhook_refused"] += 1
            self.refused.append(
                {"at_ms": now_ms(), "msg_id": msg_id, "body": body, "error": problem}
            )
            return JSONResponse({"errcode": 40035, "errmsg": problem}, status_code=200)
        m = self.messages.get(msg_id) or self.pushes.get(msg_id)
        with self._reply_cond:
            if m is not None:
                m.replies.append({"at_ms": now_ms(), "at_ns": clock_ns(), "body": body})
                m.event.set()
            self.counters["replies"] += 1
            self._reply_cond.notify_all()
        return JSONResponse({"errcode": 0, "errmsg": "ok"})
