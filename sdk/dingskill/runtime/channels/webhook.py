"""HTTP webhook mode: DingTalk POSTs robot messages to ``webhook.path`` with ``timestamp`` and
``sign`` headers (HMAC-SHA256 of ``"{timestamp}\\n{app_secret}"`` keyed by the app secret,
base64). The reply goes back in the HTTP response.

The platform's signature covers only the timestamp, not the body: whoever captures one
request can sign any body with its pair until the timestamp is stale. So this channel:
authenticates from the headers before reading the body; refuses timestamps further than
``max_skew_s`` from now (default 300 s, configurable; the platform allows an hour); and keeps
the pairs seen within that window, refusing a pair that comes back with another body (the
same body again is a retry: deduplicated by message id). What this cannot stop (a forged body
sent before the genuine one, by someone reading the traffic) is for TLS and a source
allow-list to prevent: see docs/security.md."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..http_limits import BodyError, read_json
from ..pipeline import InProgress
from ..replies import reply_body
from .parse import FrameError, parse_robot_message

log = logging.getLogger("dingskill.runtime")

__all__ = ["WebhookChannel", "sign"]

MAX_SKEW_S = 300.0
MAX_BODY = 2 * 2**20
MAX_SEEN = 200_000  # remembered pairs; the oldest are forgotten first


def sign(timestamp: str, app_secret: str) -> str:
    mac = hmac.new(app_secret.encode(), f"{timestamp}\n{app_secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


class WebhookChannel:
    def __init__(
        self,
        pipeline,
        app_secret: str,
        timeout_ms: float = 5000,
        audit=None,
        sender=None,
        max_skew_s: float = MAX_SKEW_S,
        delivery=None,
    ) -> None:
        if not app_secret:
            raise ValueError(
                "channels.enterprise_chat.auth.app_secret is required for webhook mode"
            )
        self.pipeline, self.app_secret, self.timeout_s = pipeline, app_secret, timeout_ms / 1000
        self.audit, self.sender = audit, sender
        # a Delivery with a RobotSender (the app's AppKey): sends a reply's follow-ups through
        # the robot OpenAPI after the HTTP answer; None: follow-ups are logged, not sent
        self.delivery = delivery
        self.accepting = True
        self.connected = True
        self.max_skew_ms = max_skew_s * 1000
        self._seen: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()

    def verify(
        self, timestamp: str | None, signature: str | None, now_ms: float | None = None
    ) -> str | None:
        """None when valid, else the reason."""
        if not timestamp or not signature:
            return "missing timestamp or sign header"
        try:
            ts = int(timestamp)
        except ValueError:
            return "timestamp is not a number"
        now_ms = time.time() * 1000 if now_ms is None else now_ms
        if abs(now_ms - ts) > self.max_skew_ms:
            return (
                f"timestamp is more than {self.max_skew_ms / 1000:g} s away from now "
                "(stale or replayed)"
            )
        if not hmac.compare_digest(sign(timestamp, self.app_secret), signature):
            return "signature does not match"
        return None

    def check_replay(
        self, timestamp: str, signature: str, body: bytes, now_ms: float | None = None
    ) -> str | None:
        """None for a pair not seen with another body within the window, else the reason."""
        now_ms = time.time() * 1000 if now_ms is None else now_ms
        while self._seen:  # forget pairs older than the window (they fail the skew check)
            key, (seen_ms, _) = next(iter(self._seen.items()))
            if now_ms - seen_ms <= 2 * self.max_skew_ms and len(self._seen) < MAX_SEEN:
                break
            self._seen.popitem(last=False)
        digest = hashlib.sha256(body).hexdigest()
        key = (timestamp, signature)
        seen = self._seen.get(key)
        if seen is not None and seen[1] != digest:
            return "timestamp/sign pair already used with another body (replayed signature)"
        if seen is None:
            self._seen[key] = (now_ms, digest)
        return None

    def _denied(self, ip: str, status: int, reason: str) -> JSONResponse:
        if self.audit is not None:
            self.audit.record("unknown", "-", "webhook", "denied", client_ip=ip, error=reason)
        return JSONResponse({"errcode": status, "errmsg": reason}, status_code=status)

    async def endpoint(self, request: Request):
        ip = request.client.host if request.client else ""
        ts, signature = request.headers.get("timestamp"), request.headers.get("sign")
        reason = self.verify(ts, signature)
        if reason:
            return self._denied(ip, 401, reason)
        if not self.accepting:
            return JSONResponse({"errcode": 503, "errmsg": "shutting down"}, status_code=503)
        try:
            payload = await read_json(request, MAX_BODY)
        except BodyError as exc:
            return exc.response("errmsg")
        body = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        reason = self.check_replay(ts, signature, body)
        if reason:
            return self._denied(ip, 401, reason)
        try:
            message, webhook, _ = parse_robot_message(payload, "webhook")
        except (ValueError, FrameError) as exc:
            return JSONResponse(
                {"errcode": 400, "errmsg": f"not a robot message: {exc}"}, status_code=400
            )
        message.client_ip = ip
        try:
            reply = await asyncio.wait_for(
                self.pipeline.process(message, None), timeout=self.timeout_s
            )
        except InProgress:
            return JSONResponse(
                {"errcode": 409, "errmsg": "message is being handled"}, status_code=409
            )
        except asyncio.TimeoutError:
            return JSONResponse({"errcode": 504, "errmsg": "reply took too long"}, status_code=504)
        if reply is None:  # already answered
            return JSONResponse({"msgtype": "empty"})
        later = BackgroundTask(self._followups, reply) if reply.followups else None
        return JSONResponse(reply_body(reply), background=later)

    async def _followups(self, reply) -> None:
        """The reply's follow-ups, once the HTTP answer went out (the answer is the reply)."""
        if self.delivery is None:
            log.warning(
                "follow-ups not sent: webhook mode sends them through the robot OpenAPI, "
                "which needs the app's AppKey (channels.enterprise_chat.auth.app_key or "
                "DINGSKILL_APP_KEY)",
                extra={"skill": reply.skill_id, "followups": len(reply.followups)},
            )
            return
        await self.delivery.followups(reply)

    async def start(self) -> None: ...

    async def stop(self, drain_timeout: float = 10.0) -> None:
        self.accepting = False
        deadline = time.monotonic() + drain_timeout
        while self.pipeline.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.delivery is not None and self.delivery.robot is not None:
            await self.delivery.robot.api.close()

    def describe(self) -> dict:
        return {"mode": "webhook", "connected": True}
