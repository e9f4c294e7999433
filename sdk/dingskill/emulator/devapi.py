"""The dev HTTP API (``/_emulator/...``): what ``EmulatorClient`` and other processes use to
play the users and the platform. Documented in ``docs/emulator.md``."""

from __future__ import annotations

import asyncio
import base64
import time

from starlette.requests import Request
from starlette.responses import JSONResponse

from .faults import set_faults
from .state import RobotDelivery

__all__ = ["MESSAGE_FIELDS", "SETTINGS", "DevApi"]

MESSAGE_FIELDS = {
    "text",
    "msgtype",
    "sender_id",
    "sender_nick",
    "staff_id",
    "conversation_id",
    "conversation_type",
    "conversation_title",
    "at_bot",
    "at_users",
    "external",
    "is_admin",
    "download_code",
    "recognition",
    "duration",
    "file_name",
    "video_type",
    "rich_text",
    "file_base64",
    "file_mime",
    "extra",
    "msg_id",
    "app",
    "raw",
    "webhook_ttl_ms",
}
SETTINGS = {
    "robot_delivery": lambda v: RobotDelivery(v),
    "ack_timeout": float,
    "max_attempts": int,
    "event_retry_delay": float,
    "event_max_attempts": int,
    "event_ack_requires_status": bool,
    "ping_interval": float,
    "disconnect_close_delay": float,
    "connection_lifetime": float,
    "strict_cards": bool,
    "qps_limit": int,
    "expired_webhook_errcode": lambda v: _expired_errcode(v),
}


def _expired_errcode(value) -> int:
    from .server import _expired_errcode as check

    return check(value)


def _bad(msg: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": msg}, status_code=status)


async def _body(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


class DevApi:
    """Mixin of :class:`~dingskill.emulator.Emulator`: the ``/_emulator`` routes."""

    async def _api_send(self, request: Request):
        try:
            body = await _body(request)
        except ValueError as exc:
            return _bad(str(exc))
        unknown = sorted(set(body) - MESSAGE_FIELDS)
        if unknown:
            return _bad(f"unknown field(s) {unknown}; known: {sorted(MESSAGE_FIELDS)}")
        if "file_base64" in body:
            try:
                body["file_bytes"] = base64.b64decode(body.pop("file_base64"), validate=True)
            except ValueError:
                return _bad("file_base64 is not base64")
        if not isinstance(body.get("text", ""), str):
            return _bad("field 'text' must be a string")
        try:
            msg_id = await self._push(**body)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return JSONResponse({"msg_id": msg_id, **self._msg_view(self.messages[msg_id])})

    async def _api_event(self, request: Request):
        try:
            body = await _body(request)
            if not isinstance(body.get("event_type"), str):
                raise ValueError("field 'event_type' (string) is required")
            allowed = {"event_type", "data", "app", "event_id"}
            if set(body) - allowed:
                raise ValueError(f"unknown field(s) {sorted(set(body) - allowed)}")
            push_id = await self._push_event(**body)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return JSONResponse({"id": push_id})

    async def _api_card_callback(self, request: Request):
        try:
            body = await _body(request)
            allowed = {"out_track_id", "user_id", "action_id", "params"}
            if set(body) - allowed or not body.get("out_track_id") or not body.get("user_id"):
                raise ValueError(f"fields: out_track_id and user_id required; allowed {allowed}")
            push_id = await self._card_click(
                body["out_track_id"], body["user_id"], body.get("action_id", ""), body.get("params")
            )
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return JSONResponse({"id": push_id})

    async def _api_graph(self, request: Request):
        try:
            body = await _body(request)
            allowed = {"uri", "method", "body", "headers", "app"}
            if set(body) - allowed or not isinstance(body.get("uri"), str):
                raise ValueError(f"field 'uri' is required; allowed {sorted(allowed)}")
            push_id = await self._push_graph(**body)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return JSONResponse({"id": push_id})

    async def _api_replies(self, request: Request):
        msg_id = request.query_params.get("msg_id")
        wait = float(request.query_params.get("wait", 0))
        if msg_id:
            m = self.messages.get(msg_id) or self.pushes.get(msg_id)
            if m is None:
                return _bad(f"unknown msg_id {msg_id}", 404)
            deadline = time.monotonic() + wait
            while not m.replies and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return JSONResponse(self._msg_view(m))
        return JSONResponse([self._msg_view(m) for m in self.messages.values()])

    async def _api_pushes(self, request: Request):
        push_id = request.query_params.get("id")
        if push_id:
            m = self.pushes.get(push_id)
            if m is None:
                return _bad(f"unknown push id {push_id}", 404)
            return JSONResponse(self._msg_view(m))
        return JSONResponse([self._msg_view(m) for m in self.pushes.values()])

    async def _api_stats(self, request: Request):
        return JSONResponse(self.stats())

    async def _api_faults(self, request: Request):
        try:
            set_faults(self.faults, **await _body(request))
        except ValueError as exc:
            return _bad(str(exc))
        return JSONResponse(self.faults)

    async def _api_settings(self, request: Request):
        try:
            self._apply_settings(await _body(request))
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return JSONResponse(self.settings())

    async def _api_directory(self, request: Request):
        try:
            body = await _body(request)
            self._register(body.get("app"), body.get("users") or [], body.get("groups") or [])
            for t in body.get("card_templates") or []:
                self.card_templates.add(str(t))
            if "scopes" in body:
                self._app(body.get("app")).scopes = set(body["scopes"])
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        app = self._app(body.get("app"))
        return JSONResponse(
            {"users": sorted(app.users), "groups": sorted(app.groups), "scopes": sorted(app.scopes)}
        )

    async def _api_drop(self, request: Request):
        body = await _body(request)
        n = await self._drop(body.get("app"), int(body.get("code", 1011)), body.get("count"))
        return JSONResponse({"dropped": n})

    async def _api_system(self, request: Request):
        body = await _body(request)
        n = await self._system(
            body.get("topic", "ping"),
            body.get("app"),
            body.get("reason", ""),
            body.get("close_after"),
        )
        return JSONResponse({"sent": n})

    async def _api_cards(self, request: Request):
        return JSONResponse(self.cards)

    async def _api_openapi(self, request: Request):
        path = request.query_params.get("path")
        return JSONResponse([r for r in self.openapi_log if path in (None, r["path"])])

    async def _api_proactive(self, request: Request):
        return JSONResponse(self.proactive)

    async def _api_revoke_tokens(self, request: Request):
        try:
            body = await _body(request)
            n = self.revoke_tokens(body.get("app"))
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return JSONResponse({"revoked": n})

    async def _api_connections(self, request: Request):
        conns = [c for cs in self.conns.values() for c in cs] + self.closed_conns
        return JSONResponse([self._conn_view(c) for c in conns])
