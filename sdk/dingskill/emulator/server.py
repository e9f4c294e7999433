"""A local stand-in for DingTalk's Stream mode, for development, notebooks, tests and benchmarks.

Endpoints (as the platform's, as far as the ``dingtalk-stream`` SDK uses them):

* ``POST /v1.0/gateway/connections/open`` — checks clientId / clientSecret, returns
  ``{"endpoint", "ticket"}`` (tickets are single-use and expire);
* ``GET /connect?ticket=...`` (WebSocket) — pushes CALLBACK frames of robot messages, reads
  ACKs, answers nothing else; SYSTEM ``ping`` / ``disconnect`` frames on demand;
  un-ACKed messages are redelivered after ``ack_timeout`` (to another live connection of the
  app when there is one); one app's messages are spread round-robin over its connections;
* ``POST /robot/sendBySession?session=...`` — the session webhook; records replies
  (text, markdown, actionCard) and answers like the platform, errors included;
* ``POST /v1.0/oauth2/accessToken`` and ``GET /gettoken``;
* AI cards: ``POST /v1.0/card/instances``, ``POST /v1.0/card/instances/deliver``,
  ``POST /v1.0/card/instances/createAndDeliver``, ``PUT /v1.0/card/instances``,
  ``PUT /v1.0/card/streaming``;
* ``/_emulator/...`` — inject messages, read replies and stats, inject faults.

Point the SDK at it with ``DINGTALK_OPENAPI_ENDPOINT=http://127.0.0.1:<port>``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .frames import callback_frame, robot_payload, system_frame

__all__ = ["Emulator"]

TICKET_TTL_S = 60
WEBHOOK_TTL_MS = 2 * 3600 * 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Conn:
    id: str
    app: str
    ws: WebSocket
    opened_ms: int
    sent: int = 0
    acks: int = 0
    closed: bool = False


@dataclass
class _Msg:
    msg_id: str
    frame_id: str
    app: str
    payload: dict
    created_ms: int
    pushed_ms: int = 0
    attempts: int = 0
    acked: bool = False
    ack_code: int | None = None
    conn_id: str = ""
    replies: list = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)
    raw: str | None = None  # a raw (possibly malformed) frame body for fault tests


class Emulator:
    """The emulator; run it in a background thread (``start``) or as a process (CLI)."""

    def __init__(
        self,
        apps: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ack_timeout: float = 5.0,
        max_attempts: int = 5,
        robot_code: str = "dingemulatorbot",
    ) -> None:
        self.apps = dict(apps or {"dingemulatorkey": "emulator-secret"})
        self.host, self.port = host, port
        self.ack_timeout = ack_timeout
        self.max_attempts = max_attempts
        self.robot_code = robot_code
        self.tickets: dict[str, tuple[str, float]] = {}
        self.conns: dict[str, list[_Conn]] = {}
        self._rr: dict[str, itertools.count] = {}
        self.messages: dict[str, _Msg] = {}
        self._by_frame: dict[str, _Msg] = {}
        self.sessions: dict[str, tuple[str, int]] = {}
        self.tokens: dict[str, tuple[str, float]] = {}
        self.cards: dict[str, dict] = {}
        self.faults = {"webhook_500": 0, "webhook_hang": 0, "hang_seconds": 30.0}
        self.counters = {
            "pushed": 0,
            "frames": 0,
            "acked": 0,
            "redelivered": 0,
            "replies": 0,
            "opened": 0,
            "refused": 0,
            "pings": 0,
        }
        self._lock = threading.Lock()
        self._reply_cond = threading.Condition(self._lock)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._conn_event = threading.Condition()
        self.app = Starlette(
            routes=[
                Route("/v1.0/gateway/connections/open", self._open, methods=["POST"]),
                WebSocketRoute("/connect", self._ws),
                Route("/robot/sendBySession", self._session_webhook, methods=["POST"]),
                Route("/v1.0/oauth2/accessToken", self._access_token, methods=["POST"]),
                Route("/gettoken", self._gettoken, methods=["GET"]),
                Route("/v1.0/card/instances", self._card, methods=["POST", "PUT"]),
                Route("/v1.0/card/instances/deliver", self._card_deliver, methods=["POST"]),
                Route("/v1.0/card/instances/createAndDeliver", self._card, methods=["POST"]),
                Route("/v1.0/card/streaming", self._card_stream, methods=["PUT"]),
                Route("/_emulator/messages", self._api_send, methods=["POST"]),
                Route("/_emulator/replies", self._api_replies, methods=["GET"]),
                Route("/_emulator/stats", self._api_stats, methods=["GET"]),
                Route("/_emulator/faults", self._api_faults, methods=["POST"]),
                Route("/_emulator/drop", self._api_drop, methods=["POST"]),
                Route("/_emulator/system", self._api_system, methods=["POST"]),
                Route("/_emulator/cards", self._api_cards, methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Serve in a background thread; returns the base URL once it accepts connections."""
        import uvicorn

        if not self.port:
            with socket.socket() as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            ws_ping_interval=None,
            ws_max_size=4 * 2**20,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self._server.serve())

        self._thread = threading.Thread(target=run, name="dingtalk-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("emulator did not start")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self.loop is not None:
                for conns in list(self.conns.values()):
                    for c in conns:
                        asyncio.run_coroutine_threadsafe(self._close(c, 1001), self.loop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _call(self, coro, timeout: float = 10):
        """Run ``coro`` on the emulator's loop from another thread."""
        if self.loop is None:
            raise RuntimeError("emulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # ------------------------------------------------------------------ gateway
    async def _open(self, request: Request):
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(
                {"code": "InvalidParameter", "message": "body is not JSON"}, status_code=400
            )
        cid, secret = body.get("clientId"), body.get("clientSecret")
        if cid not in self.apps or self.apps[cid] != secret:
            self.counters["refused"] += 1
            return JSONResponse(
                {"code": "Forbidden.AccessDenied", "message": "clientId or clientSecret is wrong"},
                status_code=401,
            )
        ticket = secrets.token_urlsafe(24)
        self.tickets[ticket] = (cid, time.monotonic() + TICKET_TTL_S)
        host = request.headers.get("host", f"{self.host}:{self.port}")
        return JSONResponse({"endpoint": f"ws://{host}/connect", "ticket": ticket})

    async def _ws(self, ws: WebSocket):
        ticket = ws.query_params.get("ticket", "")
        entry = self.tickets.pop(ticket, None)
        if entry is None or entry[1] < time.monotonic():
            await ws.close(code=4001)
            return
        await ws.accept()
        conn = _Conn(uuid.uuid4().hex, entry[0], ws, _now_ms())
        self.conns.setdefault(conn.app, []).append(conn)
        self.counters["opened"] += 1
        with self._conn_event:
            self._conn_event.notify_all()
        try:
            # flush messages that waited for a connection
            for m in list(self.messages.values()):
                if m.app == conn.app and not m.acked and m.attempts == 0:
                    await self._deliver(m)
            while True:
                text = await ws.receive_text()
                self._on_frame(conn, text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            conn.closed = True
            if conn in self.conns.get(conn.app, []):
                self.conns[conn.app].remove(conn)
            with self._conn_event:
                self._conn_event.notify_all()

    def _on_frame(self, conn: _Conn, text: str) -> None:
        try:
            frame = json.loads(text)
            fid = frame["headers"]["messageId"]
        except (ValueError, KeyError, TypeError):
            return
        conn.acks += 1
        m = self._by_frame.get(fid)
        if m is None:
            self.counters["pings"] += 1  # an ACK of a SYSTEM frame
            return
        code = int(frame.get("code", 0) or 0)
        m.ack_code = code
        if code == 200 and not m.acked:  # any other code asks for a redelivery
            m.acked = True
            self.counters["acked"] += 1

    # ------------------------------------------------------------------ pushing
    def _live(self, app: str) -> list[_Conn]:
        return [c for c in self.conns.get(app, []) if not c.closed]

    async def _deliver(self, m: _Msg, avoid: str = "") -> bool:
        live = self._live(m.app)
        if not live:
            return False
        choices = [c for c in live if c.id != avoid] or live
        counter = self._rr.setdefault(m.app, itertools.count())
        conn = choices[next(counter) % len(choices)]
        now = _now_ms()
        frame = (
            m.raw
            if m.raw is not None
            else callback_frame(m.app, conn.id, m.frame_id, m.payload, now)
        )
        if m.attempts:
            self.counters["redelivered"] += 1
        m.attempts += 1
        m.conn_id = conn.id
        if not m.pushed_ms:
            m.pushed_ms = now
        try:
            await conn.ws.send_text(frame)
        except Exception:  # noqa: BLE001 - a dead socket: try again at the ack timeout
            conn.closed = True
        conn.sent += 1
        self.counters["frames"] += 1
        self.loop.call_later(self.ack_timeout, self._check_ack, m.msg_id, m.attempts)
        return True

    def _check_ack(self, msg_id: str, attempt: int) -> None:
        m = self.messages.get(msg_id)
        if m is None or m.acked or m.attempts != attempt or m.attempts >= self.max_attempts:
            return
        asyncio.ensure_future(self._redeliver(m))

    async def _redeliver(self, m: _Msg) -> None:
        if not await self._deliver(m, avoid=m.conn_id):
            # no connection of the app is up: try again later (the message is not dropped)
            self.loop.call_later(self.ack_timeout, self._check_ack, m.msg_id, m.attempts)

    async def _push(
        self,
        *,
        text: str,
        sender_id: str = "user-0001",
        sender_nick: str = "测试用户",
        conversation_id: str | None = None,
        conversation_type: str = "single",
        conversation_title: str = "测试群",
        at_bot: bool = True,
        msg_id: str | None = None,
        app: str | None = None,
        at_users: list[dict] | None = None,
        staff_id: str | None = None,
        msgtype: str = "text",
        raw: str | None = None,
        webhook_ttl_ms: int = WEBHOOK_TTL_MS,
    ) -> str:
        app = app or next(iter(self.apps))
        if app not in self.apps:
            raise ValueError(f"unknown app {app!r}")
        msg_id = msg_id or f"msg{uuid.uuid4().hex}"
        now = _now_ms()
        conv = conversation_id or (
            f"cid-{sender_id}" if conversation_type == "single" else "cid-group-1"
        )
        session = secrets.token_urlsafe(16)
        self.sessions[session] = (msg_id, now + webhook_ttl_ms)
        webhook = f"{self.url}/robot/sendBySession?session={session}"
        if at_users is None:
            at_users = (
                [{"dingtalkId": f"$:LWCP_v1:${self.robot_code}"}]
                if (conversation_type == "group" and at_bot)
                else []
            )
        payload = robot_payload(
            msg_id=msg_id,
            text=(f"@办公助手 {text}" if conversation_type == "group" and at_bot else text),
            sender_id=f"$:LWCP_v1:${sender_id}",
            sender_nick=sender_nick,
            sender_staff_id=staff_id or sender_id,
            conversation_id=conv,
            conversation_type=conversation_type,
            conversation_title=conversation_title,
            robot_code=self.robot_code,
            webhook=webhook,
            webhook_expires_ms=now + webhook_ttl_ms,
            create_at=now,
            at_bot=at_bot,
            at_users=at_users,
            msgtype=msgtype,
        )
        m = _Msg(msg_id, uuid.uuid4().hex, app, payload, now, raw=raw)
        self._by_frame[m.frame_id] = m
        self.messages[msg_id] = m
        self.counters["pushed"] += 1
        if raw is not None:
            m.raw = raw.replace("{frame_id}", m.frame_id)
        await self._deliver(m)
        return msg_id

    # ------------------------------------------------------------------ replies
    async def _session_webhook(self, request: Request):
        session = request.query_params.get("session", "")
        entry = self.sessions.get(session)
        if entry is None:
            return JSONResponse({"errcode": 300001, "errmsg": "invalid session"}, status_code=200)
        if self.faults["webhook_500"] > 0:
            self.faults["webhook_500"] -= 1
            return JSONResponse({"errcode": -1, "errmsg": "system busy"}, status_code=500)
        if self.faults["webhook_hang"] > 0:
            self.faults["webhook_hang"] -= 1
            await asyncio.sleep(self.faults["hang_seconds"])
        msg_id, expires = entry
        if _now_ms() > expires:
            return JSONResponse(
                {"errcode": 300002, "errmsg": "session webhook expired"}, status_code=200
            )
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"errcode": 40035, "errmsg": "body is not JSON"}, status_code=400)
        kind = body.get("msgtype")
        if kind not in ("text", "markdown", "actionCard", "sampleMarkdown", "link", "feedCard"):
            return JSONResponse(
                {"errcode": 40035, "errmsg": f"unsupported msgtype {kind!r}"}, status_code=200
            )
        m = self.messages.get(msg_id)
        with self._reply_cond:
            if m is not None:
                m.replies.append({"at_ms": _now_ms(), "body": body})
                m.event.set()
            self.counters["replies"] += 1
            self._reply_cond.notify_all()
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    # ------------------------------------------------------------------ tokens and cards
    async def _access_token(self, request: Request):
        try:
            body = await request.json()
        except ValueError:
            body = {}
        if self.apps.get(body.get("appKey")) != body.get("appSecret") or not body.get("appKey"):
            return JSONResponse(
                {"code": "InvalidAuthentication", "message": "appKey or appSecret is wrong"},
                status_code=400,
            )
        token = secrets.token_hex(16)
        self.tokens[token] = (body["appKey"], time.time() + 7200)
        return JSONResponse({"accessToken": token, "expireIn": 7200})

    async def _gettoken(self, request: Request):
        key, secret = request.query_params.get("appkey"), request.query_params.get("appsecret")
        if not key or self.apps.get(key) != secret:
            return JSONResponse({"errcode": 40089, "errmsg": "invalid appkey or appsecret"})
        token = secrets.token_hex(16)
        self.tokens[token] = (key, time.time() + 7200)
        return JSONResponse({"errcode": 0, "access_token": token, "expires_in": 7200})

    def _authorized(self, request: Request) -> bool:
        token = request.headers.get("x-acs-dingtalk-access-token", "")
        entry = self.tokens.get(token)
        return entry is not None and entry[1] > time.time()

    async def _card(self, request: Request):
        if not self._authorized(request):
            return JSONResponse(
                {"code": "InvalidAuthentication", "message": "access token missing or expired"},
                status_code=401,
            )
        body = await request.json()
        track = body.get("outTrackId")
        if not track:
            return JSONResponse(
                {"code": "MissingParameter", "message": "outTrackId is required"}, status_code=400
            )
        card = self.cards.setdefault(
            track, {"created": None, "delivered": False, "updates": [], "stream": []}
        )
        if request.method == "POST":
            card["created"] = body
            if request.url.path.endswith("createAndDeliver"):
                card["delivered"] = True
        else:
            card["updates"].append(body)
        return JSONResponse({"success": True, "result": {"outTrackId": track}})

    async def _card_lookup(self, request: Request):
        """(card, body, None) or (None, None, error response) for a card update request."""
        if not self._authorized(request):
            return (
                None,
                None,
                JSONResponse(
                    {"code": "InvalidAuthentication", "message": "access token missing"},
                    status_code=401,
                ),
            )
        body = await request.json()
        card = self.cards.get(body.get("outTrackId", ""))
        if card is None:
            return (
                None,
                None,
                JSONResponse(
                    {"code": "NotFound", "message": "card instance not created"}, status_code=404
                ),
            )
        return card, body, None

    async def _card_deliver(self, request: Request):
        card, _, error = await self._card_lookup(request)
        if error is not None:
            return error
        card["delivered"] = True
        return JSONResponse({"success": True})

    async def _card_stream(self, request: Request):
        card, body, error = await self._card_lookup(request)
        if error is not None:
            return error
        card["stream"].append(
            {
                "key": body.get("key"),
                "content": body.get("content"),
                "isFull": body.get("isFull"),
                "isFinalize": body.get("isFinalize"),
                "isError": body.get("isError"),
            }
        )
        return JSONResponse({"success": True})

    # ------------------------------------------------------------------ test / dev API (HTTP)
    async def _api_send(self, request: Request):
        body = await request.json()
        if not isinstance(body.get("text"), str):
            return JSONResponse({"error": "field 'text' (string) is required"}, status_code=400)
        allowed = {
            "text",
            "sender_id",
            "sender_nick",
            "conversation_id",
            "conversation_type",
            "conversation_title",
            "at_bot",
            "msg_id",
            "app",
            "at_users",
            "staff_id",
            "msgtype",
            "raw",
            "webhook_ttl_ms",
        }
        unknown = sorted(set(body) - allowed)
        if unknown:
            return JSONResponse({"error": f"unknown field(s) {unknown}"}, status_code=400)
        try:
            msg_id = await self._push(**body)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"msg_id": msg_id})

    async def _api_replies(self, request: Request):
        msg_id = request.query_params.get("msg_id")
        wait = float(request.query_params.get("wait", 0))
        if msg_id:
            m = self.messages.get(msg_id)
            if m is None:
                return JSONResponse({"error": f"unknown msg_id {msg_id}"}, status_code=404)
            deadline = time.monotonic() + wait
            while not m.replies and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return JSONResponse(self._msg_view(m))
        return JSONResponse([self._msg_view(m) for m in self.messages.values()])

    @staticmethod
    def _msg_view(m: _Msg) -> dict:
        return {
            "msg_id": m.msg_id,
            "text": m.payload.get("text", {}).get("content"),
            "pushed_ms": m.pushed_ms,
            "attempts": m.attempts,
            "acked": m.acked,
            "ack_code": m.ack_code,
            "replies": m.replies,
        }

    async def _api_stats(self, request: Request):
        return JSONResponse(self.stats())

    async def _api_faults(self, request: Request):
        body = await request.json()
        for k, v in body.items():
            if k not in self.faults:
                return JSONResponse(
                    {"error": f"unknown fault {k!r}; one of {sorted(self.faults)}"}, status_code=400
                )
            self.faults[k] = v
        return JSONResponse(self.faults)

    async def _api_drop(self, request: Request):
        body = await request.json() if await request.body() else {}
        n = await self._drop(body.get("app"), int(body.get("code", 1011)), body.get("count"))
        return JSONResponse({"dropped": n})

    async def _api_system(self, request: Request):
        body = await request.json()
        n = await self._system(body.get("topic", "ping"), body.get("app"))
        return JSONResponse({"sent": n})

    async def _api_cards(self, request: Request):
        return JSONResponse(self.cards)

    async def _close(self, conn: _Conn, code: int) -> None:
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
            await self._close(c, code)
        return len(targets)

    async def _system(self, topic: str, app: str | None) -> int:
        n = 0
        for a, cs in self.conns.items():
            if app not in (None, a):
                continue
            for c in cs:
                if not c.closed:
                    await c.ws.send_text(system_frame(topic, c.id, _now_ms()))
                    n += 1
        return n

    # ------------------------------------------------------------------ Python API (thread-safe)
    def send(self, text: str, **fields) -> str:
        """Inject a user message; returns its msgId."""
        return self._call(self._push(text=text, **fields))

    def send_many(self, items: list[dict]) -> list[str]:
        async def many():
            return [await self._push(**it) for it in items]

        return self._call(many(), timeout=60)

    def wait_reply(self, msg_id: str, timeout: float = 10.0) -> dict:
        """The first reply body to ``msg_id``; raises TimeoutError."""
        m = self.messages[msg_id]
        if not m.event.wait(timeout):
            raise TimeoutError(f"no reply to {msg_id} within {timeout} s")
        return m.replies[0]["body"]

    def wait_for(self, predicate, timeout: float = 10.0) -> None:
        """Block until ``predicate()`` is true (re-checked on every reply and connection change)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("condition not reached in time")
            with self._reply_cond:
                self._reply_cond.wait(min(left, 0.05))

    def wait_connections(self, n: int, app: str | None = None, timeout: float = 20.0) -> None:
        app = app or next(iter(self.apps))
        deadline = time.monotonic() + timeout
        with self._conn_event:
            while len(self._live(app)) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._live(app))} connection(s) of {app}, wanted {n}")
                self._conn_event.wait(min(left, 0.1))

    def connections(self, app: str | None = None) -> int:
        return len(self._live(app or next(iter(self.apps))))

    def replies(self, msg_id: str) -> list[dict]:
        return [r["body"] for r in self.messages[msg_id].replies]

    def message(self, msg_id: str) -> dict:
        return self._msg_view(self.messages[msg_id])

    def drop_connections(
        self, app: str | None = None, code: int = 1011, count: int | None = None
    ) -> int:
        return self._call(self._drop(app, code, count))

    def system(self, topic: str = "ping", app: str | None = None) -> int:
        return self._call(self._system(topic, app))

    def set_faults(self, **faults) -> None:
        for k, v in faults.items():
            if k not in self.faults:
                raise ValueError(f"unknown fault {k!r}; one of {sorted(self.faults)}")
            self.faults[k] = v

    def stats(self) -> dict:
        msgs = list(self.messages.values())
        latencies = sorted(m.replies[0]["at_ms"] - m.pushed_ms for m in msgs if m.replies)
        return {
            **self.counters,
            "messages": len(msgs),
            "answered": sum(1 for m in msgs if m.replies),
            "unanswered": sum(1 for m in msgs if not m.replies),
            "duplicated": sum(1 for m in msgs if len(m.replies) > 1),
            "unacked": sum(1 for m in msgs if not m.acked),
            "connections": {a: len(self._live(a)) for a in self.apps},
            "latency_ms": {
                "n": len(latencies),
                "p50": latencies[len(latencies) // 2] if latencies else None,
                "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
                if latencies
                else None,
            },
        }
