"""The Stream gateway: opening a connection, the WebSocket, pushing frames, reading ACKs, SYSTEM.

* ``POST /v1.0/gateway/connections/open`` checks clientId / clientSecret and the
  ``subscriptions`` (required; EVENT only with topic ``*``), returns ``{"endpoint", "ticket"}``;
  tickets are single-use and live 90 s.
* ``GET /connect?ticket=`` (WebSocket): only topics the connection subscribed to are pushed.
  Robot messages are pushed once (``RobotDelivery.ONCE``, documented) or until ACKed
  (``UNTIL_ACK``). EVENT frames are pushed again until ACKed with status ``SUCCESS``; ``LATER``
  pushes them again after ``event_retry_delay``. Card callbacks and graph requests are pushed
  once; the ACK's ``response`` is handed back to whoever pushed them (the card store).
* SYSTEM: ``ping`` carries ``{"opaque"}`` which the client must echo in its ACK's data (counted
  per connection); the server pings every ``ping_interval`` s. ``disconnect`` carries
  ``{"reason"}``; nothing new is pushed to that connection and the server closes the socket
  ``disconnect_close_delay`` s later (the protocol page: "服务端在静默10s之后会主动断开 tcp 连接").
  With ``connection_lifetime`` (off by default) the server retires connections that old.
  The Python and Go SDKs close the socket themselves on ``disconnect``; the Java and Node SDKs
  wait for the server's close.

Where the sources disagree:
* Event ACKs: the protocol page wants ``data`` = ``{"status": "SUCCESS"|"LATER", "message"}``
  (the Go and Node SDKs send that); the Python SDK's ``EventHandler`` echoes the event's data
  and only sets ``code``. An ACK without ``status`` counts as SUCCESS when ``code`` is 200, LATER
  otherwise; ``event_ack_requires_status=True`` re-pushes such ACKs (strict reading).
* Robot-message resend: see :class:`~dingskill.emulator.state.RobotDelivery`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from .frames import EVENT_TOPIC, FrameType, callback_frame, event_frame, system_frame
from .state import Conn, Delivery, PushKind, RobotDelivery, clock_ns, now_ms

__all__ = ["Gateway"]


def _err(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "requestid": uuid.uuid4().hex}, status_code=status
    )


class Gateway:
    """Mixin of :class:`~dingskill.emulator.Emulator`: connections and frames."""

    # ------------------------------------------------------------------ open + WebSocket
    async def _open(self, request: Request):
        try:
            body = await request.json()
        except ValueError:
            return _err(400, "InvalidParameter", "body is not JSON")
        if not isinstance(body, dict):
            return _err(400, "InvalidParameter", "body is not a JSON object")
        cid, secret = body.get("clientId"), body.get("clientSecret")
        app = self.apps.get(cid) if isinstance(cid, str) else None
        if app is None or app.secret != secret:
            self.counters["refused"] += 1
            return _err(401, "Forbidden.AccessDenied", "clientId or clientSecret is wrong")
        subs = body.get("subscriptions")
        if not isinstance(subs, list):
            return _err(400, "InvalidParameter", "subscriptions (array) is required")
        for i, s in enumerate(subs):
            if not isinstance(s, dict) or s.get("type") not in ("EVENT", "CALLBACK"):
                return _err(
                    400, "InvalidParameter", f"subscriptions[{i}].type must be EVENT or CALLBACK"
                )
            if not isinstance(s.get("topic"), str) or not s["topic"]:
                return _err(400, "InvalidParameter", f"subscriptions[{i}].topic is required")
            if s["type"] == "EVENT" and s["topic"] != EVENT_TOPIC:
                return _err(
                    400,
                    "InvalidParameter",
                    f"subscriptions[{i}]: EVENT topics other than '*' are not supported "
                    "(choose events in the developer console, subscribe with '*')",
                )
        ticket = secrets.token_urlsafe(24)
        self.tickets[ticket] = (
            cid,
            time.monotonic() + self.ticket_ttl,
            [dict(s) for s in subs],
            str(body.get("ua") or ""),
        )
        host = request.headers.get("host", f"{self.host}:{self.port}")
        return JSONResponse({"endpoint": f"ws://{host}/connect", "ticket": ticket})

    async def _ws(self, ws: WebSocket):
        ticket = ws.query_params.get("ticket", "")
        entry = self.tickets.pop(ticket, None)
        if entry is None or entry[1] < time.monotonic():
            await ws.close(code=4001)
            return
        await ws.accept()
        conn = Conn(uuid.uuid4().hex, entry[0], ws, now_ms(), subscriptions=entry[2], ua=entry[3])
        self.conns.setdefault(conn.app, []).append(conn)
        self.counters["opened"] += 1
        with self._conn_event:
            self._conn_event.notify_all()
        pinger = asyncio.ensure_future(self._ping_loop(conn))
        try:
            await self._flush_waiting(conn.app)
            while True:
                text = await ws.receive_text()
                self._on_frame(conn, text)
        except (WebSocketDisconnect, RuntimeError):
            if not conn.closed_by:
                conn.closed_by = "client"
        finally:
            pinger.cancel()
            conn.closed = True
            if conn in self.conns.get(conn.app, []):
                self.conns[conn.app].remove(conn)
            with self._conn_event:
                self._conn_event.notify_all()
            self.closed_conns.append(conn)

    async def _flush_waiting(self, app: str) -> None:
        """Push what waited for a (subscribed) connection: events, and robot messages in
        ``UNTIL_ACK`` mode."""
        for m in list(self.messages.values()) + list(self.pushes.values()):
            if m.app != app or m.acked or m.attempts or m.not_pushed:
                continue
            if m.kind is PushKind.ROBOT and self.robot_delivery is not RobotDelivery.UNTIL_ACK:
                continue
            await self._deliver(m)

    # ------------------------------------------------------------------ ACKs
    def _on_frame(self, conn: Conn, text: str) -> None:
        try:
            frame = json.loads(text)
            fid = frame["headers"]["messageId"]
        except (ValueError, KeyError, TypeError):
            self.counters["bad_frames"] += 1
            return
        conn.acks += 1
        data = frame.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data) if data else None
            except ValueError:
                pass
        if fid in conn.pings:
            opaque = conn.pings.pop(fid)
            ok = isinstance(data, dict) and data.get("opaque") == opaque
            conn.pongs += ok
            conn.bad_pongs += not ok
            self.counters["pongs" if ok else "bad_pongs"] += 1
            return
        m = self._by_frame.get(fid)
        if m is None:
            self.counters["system_acks"] += 1  # an ACK of another SYSTEM frame
            return
        try:
            code = int(frame.get("code", 0) or 0)
        except (TypeError, ValueError):
            code = 0
        m.ack_code, m.ack_data = code, data
        if m.kind is PushKind.EVENT:
            m.meta["ack_attempt"] = m.attempts
            status = data.get("status") if isinstance(data, dict) else None
            if status is None and not self.event_ack_requires_status:
                status = "SUCCESS" if code == 200 else "LATER"
            m.ack_status = status
            if status == "SUCCESS" and not m.acked:
                m.acked = True
                self.counters["acked"] += 1
                with self._reply_cond:
                    self._reply_cond.notify_all()
            elif not m.acked:
                self.counters["later"] += 1
                self.loop.call_later(self.event_retry_delay, self._retry, m, m.attempts, True)
            return
        if code == 200 and not m.acked:
            m.acked = True
            self.counters["acked"] += 1
            if m.kind in (PushKind.CARD_CALLBACK, PushKind.GRAPH):
                response = data.get("response") if isinstance(data, dict) else None
                m.meta["response"] = response
                self._on_callback_response(m, response)  # the card store applies it
            with self._reply_cond:
                self._reply_cond.notify_all()

    # ------------------------------------------------------------------ pushing
    def _live(self, app: str, ftype: str | None = None, topic: str | None = None) -> list[Conn]:
        return [
            c
            for c in self.conns.get(app, [])
            if not c.closed
            and not c.closing
            and (ftype is None or c.subscribed(ftype, topic or ""))
        ]

    def _ftype(self, m: Delivery) -> str:
        return FrameType.EVENT.value if m.kind is PushKind.EVENT else FrameType.CALLBACK.value

    async def _deliver(self, m: Delivery, avoid: str = "") -> bool:
        live = self._live(m.app, self._ftype(m), m.topic)
        if not live:
            return False
        choices = [c for c in live if c.id != avoid] or live
        counter = self._rr.setdefault(m.app, itertools.count())
        conn = choices[next(counter) % len(choices)]
        now = now_ms()
        if m.raw is not None:
            frame = m.raw
        elif m.kind is PushKind.EVENT:
            frame = event_frame(conn.id, m.frame_id, m.payload, now, **m.meta["headers"])
        else:
            frame = callback_frame(m.app, conn.id, m.frame_id, m.payload, now, topic=m.topic)
        if m.attempts:
            self.counters["redelivered"] += 1
        m.attempts += 1
        m.conn_id = conn.id
        if not m.pushed_ms:
            m.pushed_ms, m.pushed_ns = now, clock_ns()
        try:
            await conn.ws.send_text(frame)
        except Exception:  # noqa: BLE001 - a dead socket: the retry timer handles it
            conn.closed = True
        conn.sent += 1
        self.counters["frames"] += 1
        if m.kind is PushKind.EVENT or (
            m.kind is PushKind.ROBOT and self.robot_delivery is RobotDelivery.UNTIL_ACK
        ):
            self.loop.call_later(self.ack_timeout, self._retry, m, m.attempts, False)
        return True

    def _retry(self, m: Delivery, attempt: int, later: bool) -> None:
        limit = self.event_max_attempts if m.kind is PushKind.EVENT else self.max_attempts
        current = self._by_frame.get(m.frame_id) is m
        if not current or m.acked or m.attempts != attempt or m.attempts >= limit:
            return
        if not later and m.meta.get("ack_attempt") == attempt:
            return  # this attempt was answered (LATER schedules its own retry)
        asyncio.ensure_future(self._redeliver(m))

    async def _redeliver(self, m: Delivery) -> None:
        if not await self._deliver(m, avoid=m.conn_id):
            # no connection of the app is up: try again later (the item is not dropped)
            self.loop.call_later(self.ack_timeout, self._retry, m, m.attempts, False)

    # ------------------------------------------------------------------ SYSTEM
    async def _ping(self, conn: Conn) -> None:
        fid, opaque = uuid.uuid4().hex, uuid.uuid4().hex
        conn.pings[fid] = opaque
        self.counters["pings"] += 1
        await conn.ws.send_text(system_frame("ping", conn.id, now_ms(), {"opaque": opaque}, fid))

    async def _ping_loop(self, conn: Conn) -> None:
        """Server pings every ``ping_interval`` s; with ``connection_lifetime`` the server
        retires the connection (SYSTEM ``disconnect``) once it is that old, as the platform
        does periodically "for the health of long connections and load balancing"."""
        started = time.monotonic()
        last_ping = started
        try:
            while not conn.closed:
                await asyncio.sleep(0.05)
                if conn.closed or conn.closing:
                    continue
                now = time.monotonic()
                if self.connection_lifetime and now - started >= self.connection_lifetime:
                    await self._disconnect(conn, "connection is expired", None)
                elif self.ping_interval and now - last_ping >= self.ping_interval:
                    last_ping = now
                    await self._ping(conn)
        except Exception:  # noqa: BLE001 - the socket went away: the reader cleans up
            pass

    async def _disconnect(self, conn: Conn, reason: str, close_after: float | None) -> None:
        conn.closing, conn.disconnect_reason = True, reason
        try:
            await conn.ws.send_text(
                system_frame("disconnect", conn.id, now_ms(), {"reason": reason})
            )
        except Exception:  # noqa: BLE001 - already gone
            return
        delay = self.disconnect_close_delay if close_after is None else close_after

        async def close_later():
            await asyncio.sleep(delay)
            if not conn.closed:
                conn.closed_by = "server"
                await self._close(conn, 1000)

        asyncio.ensure_future(close_later())

    async def _system(self, topic: str, app: str | None, reason: str = "", close_after=None) -> int:
        n = 0
        for a, cs in list(self.conns.items()):
            if app not in (None, a):
                continue
            for c in list(cs):
                if c.closed or c.closing:
                    continue
                if topic == "ping":
                    await self._ping(c)
                elif topic == "disconnect":
                    await self._disconnect(c, reason or "connection is expired", close_after)
                else:
                    await c.ws.send_text(system_frame(topic, c.id, now_ms()))
                n += 1
        return n

    async def _close(self, conn: Conn, code: int) -> None:
        conn.closed = True
        try:
            await conn.ws.close(code=code)
        except Exception:  # noqa: BLE001 - already gone
            pass

    async def _drop(self, app: str | None, code: int = 1011, count: int | None = None) -> int:
        targets = [
            c for a, cs in self.conns.items() if app in (None, a) for c in cs if not c.closed
        ]
        targets = targets[: count or len(targets)]
        for c in targets:
            c.closed_by = "server"
            await self._close(c, code)
        return len(targets)

    def _conn_view(self, c: Conn) -> dict:
        return {
            "id": c.id,
            "app": c.app,
            "ua": c.ua,
            "subscriptions": c.subscriptions,
            "opened_ms": c.opened_ms,
            "sent": c.sent,
            "acks": c.acks,
            "closed": c.closed,
            "closing": c.closing,
            "closed_by": c.closed_by,
            "disconnect_reason": c.disconnect_reason,
            "pongs": c.pongs,
            "bad_pongs": c.bad_pongs,
            "pings_unanswered": len(c.pings),
        }
