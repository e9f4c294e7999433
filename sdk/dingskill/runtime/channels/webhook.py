"""HTTP webhook mode: DingTalk POSTs robot messages to ``webhook.path`` with ``timestamp`` and
``sign`` headers (HMAC-SHA256 of ``"{timestamp}\\n{app_secret}"`` keyed by the app secret,
base64). Stale timestamps (over one hour) and bad signatures are refused with 401; the reply
goes back in the HTTP response (or through the session webhook when it takes too long)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..pipeline import InProgressElsewhere
from ..replies import reply_body
from .parse import FrameError, parse_robot_message

__all__ = ["WebhookChannel", "sign"]

MAX_SKEW_MS = 3600 * 1000
MAX_BODY = 2 * 2**20


def sign(timestamp: str, app_secret: str) -> str:
    mac = hmac.new(app_secret.encode(), f"{timestamp}\n{app_secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


class WebhookChannel:
    def __init__(
        self, pipeline, app_secret: str, timeout_ms: float = 5000, audit=None, sender=None
    ) -> None:
        if not app_secret:
            raise ValueError(
                "channels.enterprise_chat.auth.app_secret is required for webhook mode"
            )
        self.pipeline, self.app_secret, self.timeout_s = pipeline, app_secret, timeout_ms / 1000
        self.audit, self.sender = audit, sender
        self.accepting = True
        self.connected = True

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
        if abs(now_ms - ts) > MAX_SKEW_MS:
            return "timestamp is more than one hour away from now (stale or replayed)"
        if not hmac.compare_digest(sign(timestamp, self.app_secret), signature):
            return "signature does not match"
        return None

    async def endpoint(self, request: Request):
        ip = request.client.host if request.client else ""
        reason = self.verify(request.headers.get("timestamp"), request.headers.get("sign"))
        if reason:
            if self.audit is not None:
                self.audit.record("unknown", "-", "webhook", "denied", client_ip=ip, error=reason)
            return JSONResponse({"errcode": 401, "errmsg": reason}, status_code=401)
        if not self.accepting:
            return JSONResponse({"errcode": 503, "errmsg": "shutting down"}, status_code=503)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse(
                {"errcode": 413, "errmsg": f"body over {MAX_BODY} bytes"}, status_code=413
            )
        try:
            message, webhook, _ = parse_robot_message(json.loads(body), "webhook")
        except (ValueError, FrameError) as exc:
            return JSONResponse(
                {"errcode": 400, "errmsg": f"not a robot message: {exc}"}, status_code=400
            )
        message.client_ip = ip  # type: ignore[attr-defined]
        try:
            reply = await asyncio.wait_for(
                self.pipeline.process(message, None), timeout=self.timeout_s
            )
        except InProgressElsewhere:
            return JSONResponse(
                {"errcode": 409, "errmsg": "message is being handled"}, status_code=409
            )
        except asyncio.TimeoutError:
            return JSONResponse({"errcode": 504, "errmsg": "reply took too long"}, status_code=504)
        if reply is None:  # already answered
            return JSONResponse({"msgtype": "empty"})
        return JSONResponse(reply_body(reply))

    async def start(self) -> None: ...

    async def stop(self, drain_timeout: float = 10.0) -> None:
        self.accepting = False
        deadline = time.monotonic() + drain_timeout
        while self.pipeline.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def describe(self) -> dict:
        return {"mode": "webhook", "connected": True}
