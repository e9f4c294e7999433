"""A local stand-in for DingTalk's Stream mode, for development, notebooks, tests and benchmarks.

The :class:`Emulator` puts together, one module per concern:

* :mod:`.gateway` — ``/v1.0/gateway/connections/open``, the WebSocket, delivery, ACKs, SYSTEM;
* :mod:`.webhooks` — the session webhook (``/robot/sendBySession``);
* :mod:`.openapi` — tokens, proactive robot messages, message files, the off-duty prompt;
* :mod:`.cards` — card instances (AI cards), interactive cards, card clicks;
* :mod:`.faults` — injected webhook faults;
* :mod:`.devapi` — the ``/_emulator/...`` dev HTTP API;
* :mod:`.frames` — the frames and payloads as the platform shapes them.

Point the SDK at it with ``DINGTALK_OPENAPI_ENDPOINT=http://127.0.0.1:<port>``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import threading
import time
import uuid

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from .cards import SDK_TEMPLATES, Cards
from .devapi import SETTINGS, DevApi
from .faults import DEFAULT_FAULTS, set_faults
from .frames import GRAPH_TOPIC, ROBOT_TOPIC, RobotMessage, robot_payload
from .gateway import Gateway
from .limits import QpsLimiter, Tokens
from .openapi import OpenApi
from .state import (
    TICKET_TTL_S,
    WEBHOOK_TTL_MS,
    App,
    Delivery,
    PushKind,
    RobotDelivery,
    now_ms,
)
from .webhooks import Webhooks

__all__ = ["Emulator"]

_MEDIA_MIME = {
    "picture": "image/png",
    "audio": "audio/amr",
    "video": "video/mp4",
    "file": "application/octet-stream",
}


class Emulator(Cards, OpenApi, Webhooks, Gateway, DevApi):
    """The emulator; run it in a background thread (``start``) or as a process (CLI).

    ``robot_delivery``: ``"once"`` (documented: robot messages are pushed once, and not at all
    while no connection of the app subscribed to them is up — the user sees the off-duty
    prompt) or ``"until_ack"`` (pushed again after ``ack_timeout`` until ACKed with 200, up to
    ``max_attempts``; messages wait for a connection). Events are always pushed until ACKed
    with SUCCESS (``event_retry_delay`` after LATER, ``ack_timeout`` without an ACK, up to
    ``event_max_attempts``).
    """

    def __init__(
        self,
        apps: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ack_timeout: float = 5.0,
        max_attempts: int = 5,
        *,
        robot_delivery: str | RobotDelivery = RobotDelivery.ONCE,
        event_retry_delay: float | None = None,
        event_max_attempts: int = 10,
        event_ack_requires_status: bool = False,
        ping_interval: float = 30.0,
        disconnect_close_delay: float = 10.0,
        connection_lifetime: float = 0.0,
        ticket_ttl: float = TICKET_TTL_S,
        webhook_ttl_ms: int = WEBHOOK_TTL_MS,
        scopes: dict[str, set[str]] | None = None,
        card_templates: tuple[str, ...] | list[str] = (),
        strict_cards: bool = True,
        bot_name: str = "办公助手",
        qps_limit: int = 20,
        expired_webhook_errcode: int = 300001,
    ) -> None:
        self.apps: dict[str, App] = {
            k: App(k, s, bot_name=bot_name, unified_app_id=str(uuid.uuid5(uuid.NAMESPACE_DNS, k)))
            for k, s in (apps or {"dingemulatorkey": "emulator-secret"}).items()
        }
        for k, granted in (scopes or {}).items():
            self._app(k).scopes = set(granted)
        self.host, self.port = host, port
        self.ack_timeout = ack_timeout
        self.max_attempts = max_attempts
        self.robot_delivery = RobotDelivery(robot_delivery)
        self.event_retry_delay = ack_timeout if event_retry_delay is None else event_retry_delay
        self.event_max_attempts = event_max_attempts
        self.event_ack_requires_status = event_ack_requires_status
        self.ping_interval = ping_interval
        self.disconnect_close_delay = disconnect_close_delay
        self.connection_lifetime = connection_lifetime
        self.ticket_ttl = ticket_ttl
        self.webhook_ttl_ms = webhook_ttl_ms
        self.card_templates: set[str] = set(SDK_TEMPLATES) | set(card_templates)
        self.strict_cards = strict_cards
        self.tickets: dict[str, tuple] = {}
        self.conns: dict = {}
        self.closed_conns: list = []
        self._rr: dict = {}
        self.messages: dict[str, Delivery] = {}  # robot messages by msgId
        self.pushes: dict[str, Delivery] = {}  # events, card callbacks, graph requests by id
        self._by_frame: dict[str, Delivery] = {}
        self.sessions: dict[str, tuple[str, int, str]] = {}
        self.tokens = Tokens()
        self.qps = QpsLimiter(int(qps_limit))
        self.expired_webhook_errcode = _expired_errcode(expired_webhook_errcode)
        self.cards: dict[str, dict] = {}
        self.files: dict[str, dict] = {}  # downloadCode -> {"app", "data", "mime"}
        self.file_urls: dict[str, tuple[str, float]] = {}
        self.openapi_log: list[dict] = []
        self.proactive: list[dict] = []
        self.refused: list[dict] = []  # session-webhook bodies the platform refused
        self.faults = dict(DEFAULT_FAULTS)
        self.counters = {
            k: 0
            for k in (
                "pushed",
                "frames",
                "acked",
                "redelivered",
                "replies",
                "opened",
                "refused",
                "pings",
                "pongs",
                "bad_pongs",
                "system_acks",
                "bad_frames",
                "later",
                "not_pushed",
                "webhook_refused",
                "webhook_hangs",  # session-webhook calls held by the webhook_hang fault
                "webhook_hangs_ended",
                "openapi",
                "qps_limited",  # OpenAPI calls refused with QpsLimitForAppkeyAndApi
                "webhook_unknown_session",  # webhook calls for an unknown or expired session
            )
        }
        self._lock = threading.Lock()
        self._reply_cond = threading.Condition(self._lock)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._conn_event = threading.Condition()
        self.app = Starlette(routes=self._routes())

    def _routes(self) -> list:
        r = Route
        return [
            r("/v1.0/gateway/connections/open", self._open, methods=["POST"]),
            WebSocketRoute("/connect", self._ws),
            r("/robot/sendBySession", self._session_webhook, methods=["POST"]),
            r("/v1.0/oauth2/accessToken", self._access_token, methods=["POST"]),
            r("/gettoken", self._gettoken, methods=["GET"]),
            r("/v1.0/robot/oToMessages/batchSend", self._r_batch_send, methods=["POST"]),
            r("/v1.0/robot/groupMessages/send", self._r_group_send, methods=["POST"]),
            r("/v1.0/robot/messageFiles/download", self._r_file_download, methods=["POST"]),
            r(
                "/v1.0/innerApi/robot/stream/away/template/update",
                self._r_off_duty,
                methods=["POST"],
            ),
            r("/v1.0/card/instances", self._r_card_instances, methods=["POST", "PUT"]),
            r("/v1.0/card/instances/deliver", self._r_card_deliver, methods=["POST"]),
            r(
                "/v1.0/card/instances/createAndDeliver",
                self._r_card_create_deliver,
                methods=["POST"],
            ),
            r("/v1.0/card/streaming", self._r_card_stream, methods=["PUT"]),
            r(
                "/v1.0/im/v1.0/robot/interactiveCards/send",
                self._r_icard_send,
                methods=["POST"],
            ),
            r("/v1.0/im/robots/interactiveCards", self._r_icard_update, methods=["PUT"]),
            r("/_emulator/messages", self._api_send, methods=["POST"]),
            r("/_emulator/events", self._api_event, methods=["POST"]),
            r("/_emulator/card-callbacks", self._api_card_callback, methods=["POST"]),
            r("/_emulator/graph", self._api_graph, methods=["POST"]),
            r("/_emulator/replies", self._api_replies, methods=["GET"]),
            r("/_emulator/pushes", self._api_pushes, methods=["GET"]),
            r("/_emulator/stats", self._api_stats, methods=["GET"]),
            r("/_emulator/faults", self._api_faults, methods=["POST"]),
            r("/_emulator/settings", self._api_settings, methods=["GET", "POST"]),
            r("/_emulator/directory", self._api_directory, methods=["POST"]),
            r("/_emulator/drop", self._api_drop, methods=["POST"]),
            r("/_emulator/system", self._api_system, methods=["POST"]),
            r("/_emulator/cards", self._api_cards, methods=["GET"]),
            r("/_emulator/openapi", self._api_openapi, methods=["GET"]),
            r("/_emulator/proactive", self._api_proactive, methods=["GET"]),
            r("/_emulator/connections", self._api_connections, methods=["GET"]),
            r("/_emulator/files/{token}", self._serve_file, methods=["GET"]),
            r("/_emulator/tokens/revoke", self._api_revoke_tokens, methods=["POST"]),
        ]

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
            # the compiled parser when installed (a dependency): the emulator shares the
            # benchmark machine's cores with the bot under test, h11 cost it twice the CPU
            http="httptools" if importlib.util.find_spec("httptools") else "h11",
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
            if self.loop is not None and self.loop.is_running():
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

    @property
    def qps_limit(self) -> int:
        """Calls per second each app may make to each OpenAPI (0: unlimited)."""
        return self.qps.limit

    @qps_limit.setter
    def qps_limit(self, value: int) -> None:
        self.qps.limit = int(value)

    def revoke_tokens(self, app: str | None = None) -> int:
        """Revoke the access tokens of ``app`` (every app when None), as a secret reset does:
        calls with them answer 401 until the bot gets a new one. Returns how many."""
        return self.tokens.revoke(None if app is None else self._app(app).client_id)

    # ------------------------------------------------------------------ directory
    def _app(self, app: str | None) -> App:
        key = app or next(iter(self.apps))
        if key not in self.apps:
            raise ValueError(f"unknown app {key!r}; apps: {sorted(self.apps)}")
        return self.apps[key]

    def _register(self, app: str | None, users=(), groups=()) -> None:
        a = self._app(app)
        a.users.update(str(u) for u in users)
        a.groups.update(str(g) for g in groups)

    def register(self, app: str | None = None, users=(), groups=()) -> None:
        """Make staff ids members of the organisation and groups hold the robot (the OpenAPI
        accepts only those). Senders and groups of pushed messages are registered anyway."""
        self._register(app, users, groups)

    def settings(self) -> dict:
        return {k: getattr(self, k) for k in SETTINGS}

    def _apply_settings(self, changes: dict) -> None:
        for k, v in changes.items():
            if k not in SETTINGS:
                raise ValueError(f"unknown setting {k!r}; one of {sorted(SETTINGS)}")
            setattr(self, k, SETTINGS[k](v))

    # ------------------------------------------------------------------ pushing
    async def _push_item(self, d: Delivery, reliable: bool) -> None:
        self.pushes[d.msg_id] = d
        self._by_frame[d.frame_id] = d
        self.counters["pushed"] += 1
        if not await self._deliver(d) and not reliable:
            d.not_pushed = f"no connection of {d.app} subscribed to {d.topic}"
            self.counters["not_pushed"] += 1

    async def _push(
        self,
        *,
        text: str = "",
        msg_id: str | None = None,
        app: str | None = None,
        raw: str | None = None,
        webhook_ttl_ms: int | None = None,
        file_bytes: bytes | None = None,
        file_mime: str | None = None,
        **fields,
    ) -> str:
        a = self._app(app)
        m = RobotMessage(text=text, **fields)
        group = m.conversation_type == "group"
        if m.conversation_type not in ("single", "group"):
            raise ValueError("conversation_type must be 'single' or 'group'")
        if group and m.at_bot and m.msgtype == "text" and f"@{a.bot_name}" not in m.text:
            m.text = f"@{a.bot_name} {m.text}"  # what the user typed
        msg_id = msg_id or f"msg{uuid.uuid4().hex}"
        now = now_ms()
        conv = m.conversation_id or (f"cid-{m.sender_id}" if not group else "cid-group-1")
        webhook, expires = self._new_session(
            msg_id,
            a.client_id,
            self.webhook_ttl_ms if webhook_ttl_ms is None else webhook_ttl_ms,
            now=now,
        )
        if m.msgtype in _MEDIA_MIME and not m.download_code:
            m.download_code = f"dc-{uuid.uuid4().hex}"
        payload = robot_payload(
            m,
            msg_id=msg_id,
            robot_code=a.robot_code,
            bot_name=a.bot_name,
            webhook=webhook,
            webhook_expires_ms=expires,
            create_at=now,
            conversation_id=conv,
            corp_id=a.corp_id,
        )
        self._register_media(a, m, payload, file_bytes, file_mime)
        if not m.external:
            a.users.add(payload.get("senderStaffId", ""))
        if group:
            a.groups.add(conv)
        d = Delivery(msg_id, uuid.uuid4().hex, a.client_id, payload, now, topic=ROBOT_TOPIC)
        self._by_frame[d.frame_id] = d
        self.messages[msg_id] = d
        self.counters["pushed"] += 1
        if raw is not None:
            d.raw = raw.replace("{frame_id}", d.frame_id)
            self._register_raw(a, d.raw)
        if group and not m.at_bot:
            d.not_pushed = "a group message that does not @ the robot is not pushed"
            self.counters["not_pushed"] += 1
            return msg_id
        if not await self._deliver(d) and self.robot_delivery is RobotDelivery.ONCE:
            d.not_pushed = f"no connection of {a.client_id} subscribed to {ROBOT_TOPIC}"
            d.offline_prompt = a.off_duty or {"text": "机器人暂时不在线，请稍后再试。"}
            self.counters["not_pushed"] += 1
        return msg_id

    @staticmethod
    def _register_raw(a: App, raw: str) -> None:
        """A hand-built frame: its sender and group become known, as for built messages."""
        try:
            data = json.loads(json.loads(raw)["data"])
        except (ValueError, KeyError, TypeError):
            return
        if not isinstance(data, dict):
            return
        if isinstance(data.get("senderStaffId"), str):
            a.users.add(data["senderStaffId"])
        if str(data.get("conversationType")) == "2" and isinstance(data.get("conversationId"), str):
            a.groups.add(data["conversationId"])

    def _register_media(self, a: App, m: RobotMessage, payload: dict, data, mime) -> None:
        codes = []
        if m.msgtype in _MEDIA_MIME:
            codes.append((payload["content"]["downloadCode"], _MEDIA_MIME[m.msgtype]))
        elif m.msgtype == "richText":
            codes += [
                (p["downloadCode"], "image/png")
                for p in payload["content"]["richText"]
                if isinstance(p, dict) and p.get("downloadCode")
            ]
        for code, default_mime in codes:
            body = data if data is not None else f"emulator file {code}\n".encode()
            self.files[code] = {
                "app": a.client_id,
                "data": body,
                "mime": file_mime_or(mime, default_mime),
            }

    async def _push_event(
        self, event_type: str, data: dict | None = None, app: str | None = None, event_id=None
    ) -> str:
        a = self._app(app)
        now = now_ms()
        eid = event_id or uuid.uuid4().hex
        group = (data or {}).get("openConversationId")
        if isinstance(group, str) and group:
            a.groups.add(group)  # a group event is about a group the app's robot is in
        d = Delivery(
            f"evt-{eid}",
            uuid.uuid4().hex,
            a.client_id,
            data or {},
            now,
            kind=PushKind.EVENT,
            topic="*",
            meta={
                "headers": {
                    "event_type": event_type,
                    "event_id": eid,
                    "corp_id": a.corp_id,
                    "born_ms": now,
                    "unified_app_id": a.unified_app_id,
                }
            },
        )
        await self._push_item(d, reliable=True)
        return d.msg_id

    async def _push_graph(
        self,
        uri: str,
        body: dict | None = None,
        method: str = "POST",
        headers: dict | None = None,
        app: str | None = None,
    ) -> str:
        a = self._app(app)
        push_id = f"graph-{uuid.uuid4().hex}"
        webhook, expires = self._new_session(push_id, a.client_id, self.webhook_ttl_ms)
        content = {"sessionWebhook": webhook, "sessionWebhookExpiredTime": expires, **(body or {})}
        payload = {
            "requestLine": {"method": method, "uri": uri},
            "headers": {"content-type": "application/json", **(headers or {})},
            "body": json.dumps(content, ensure_ascii=False),
        }
        d = Delivery(push_id, uuid.uuid4().hex, a.client_id, payload, now_ms(), kind=PushKind.GRAPH)
        d.topic = GRAPH_TOPIC
        await self._push_item(d, reliable=False)
        return push_id

    # ------------------------------------------------------------------ views
    @staticmethod
    def _msg_view(m: Delivery) -> dict:
        view = {
            "msg_id": m.msg_id,
            "kind": m.kind.value,
            "topic": m.topic,
            "pushed_ms": m.pushed_ms,
            "attempts": m.attempts,
            "acked": m.acked,
            "ack_code": m.ack_code,
            "ack_status": m.ack_status,
            "not_pushed": m.not_pushed,
            "replies": m.replies,
        }
        if m.kind is PushKind.ROBOT:
            view["text"] = (m.payload.get("text") or {}).get("content")
            view["msgtype"] = m.payload.get("msgtype")
            view["payload"] = m.payload
            view["offline_prompt"] = m.offline_prompt
        else:
            view["payload"] = m.payload
            view["response"] = m.meta.get("response")
        return view

    # ------------------------------------------------------------------ Python API (thread-safe)
    def send(self, text: str = "", **fields) -> str:
        """Inject a user message (fields of :class:`~dingskill.emulator.frames.RobotMessage`,
        plus ``msg_id``, ``app``, ``webhook_ttl_ms``, ``file_bytes``, ``file_mime``, ``raw``);
        returns its msgId."""
        return self._call(self._push(text=text, **fields))

    def send_many(self, items: list[dict]) -> list[str]:
        async def many():
            return [await self._push(**it) for it in items]

        return self._call(many(), timeout=60)

    def push_event(
        self, event_type: str, data: dict | None = None, app: str | None = None, event_id=None
    ) -> str:
        """Push an EVENT (pushed again until ACKed with SUCCESS); returns its id."""
        return self._call(self._push_event(event_type, data, app, event_id))

    def card_click(
        self, out_track_id: str, user_id: str, action_id: str = "", params: dict | None = None
    ) -> str:
        """A user clicks a card: a callback carrying their private data; returns its id."""
        return self._call(self._card_click(out_track_id, user_id, action_id, params))

    def graph_request(
        self,
        uri: str,
        body: dict | None = None,
        method: str = "POST",
        headers: dict | None = None,
        app: str | None = None,
    ) -> str:
        """Push a graph/agent request (``/v1.0/graph/api/invoke``); its body carries a
        ``sessionWebhook`` the bot may answer through (``contentType: ai_card``)."""
        return self._call(self._push_graph(uri, body, method, headers, app))

    def push(self, push_id: str) -> dict:
        """The view of an event, card callback or graph request."""
        return self._msg_view(self.pushes[push_id])

    def wait_reply(self, msg_id: str, timeout: float = 10.0) -> dict:
        """The first reply body to ``msg_id`` (a message or a graph request); TimeoutError."""
        m = self.messages.get(msg_id) or self.pushes[msg_id]
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
        app = self._app(app).client_id
        deadline = time.monotonic() + timeout
        with self._conn_event:
            while len(self._live(app)) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._live(app))} connection(s) of {app}, wanted {n}")
                self._conn_event.wait(min(left, 0.1))

    def connections(self, app: str | None = None) -> int:
        return len(self._live(self._app(app).client_id))

    def connection_views(self, app: str | None = None) -> list[dict]:
        """Every connection (open and closed) with its subscriptions, pings, who closed it."""
        conns = [c for cs in self.conns.values() for c in cs] + self.closed_conns
        return [self._conn_view(c) for c in conns if app in (None, c.app)]

    def replies(self, msg_id: str) -> list[dict]:
        m = self.messages.get(msg_id) or self.pushes[msg_id]
        return [r["body"] for r in m.replies]

    def message(self, msg_id: str) -> dict:
        return self._msg_view(self.messages[msg_id])

    def drop_connections(
        self, app: str | None = None, code: int = 1011, count: int | None = None
    ) -> int:
        return self._call(self._drop(app, code, count))

    def system(
        self,
        topic: str = "ping",
        app: str | None = None,
        reason: str = "",
        close_after: float | None = None,
    ) -> int:
        """Send a SYSTEM frame (``ping`` with a fresh ``opaque``, or ``disconnect`` with
        ``reason``, the socket closed ``close_after`` s later) to every open connection."""
        return self._call(self._system(topic, app, reason, close_after))

    def set_faults(self, **faults) -> None:
        set_faults(self.faults, **faults)

    def openapi_requests(self, path: str | None = None) -> list[dict]:
        """Recorded OpenAPI requests (method, path, app, body, status, response)."""
        return [r for r in self.openapi_log if path in (None, r["path"])]

    def stats(self) -> dict:
        msgs = list(self.messages.values())
        latencies = sorted(m.replies[0]["at_ms"] - m.pushed_ms for m in msgs if m.replies)
        return {
            **self.counters,
            "messages": len(msgs),
            "answered": sum(1 for m in msgs if m.replies),
            "unanswered": sum(1 for m in msgs if not m.replies),
            "duplicated": sum(1 for m in msgs if len(m.replies) > 1),
            "unacked": sum(1 for m in msgs if not m.acked and not m.not_pushed),
            "connections": {a: len(self._live(a)) for a in self.apps},
            "robot_delivery": self.robot_delivery.value,
            "tokens": {
                "issued": self.tokens.issued,
                "reused": self.tokens.reused,
                "revoked": self.tokens.revoked,
            },
            "latency_ms": {
                "n": len(latencies),
                "p50": latencies[len(latencies) // 2] if latencies else None,
                "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
                if latencies
                else None,
            },
        }


def _expired_errcode(value) -> int:
    from .webhooks import EXPIRED_ERRCODES

    code = int(value)
    if code not in EXPIRED_ERRCODES:
        raise ValueError(
            f"expired_webhook_errcode {value!r}: one of {sorted(EXPIRED_ERRCODES)} "
            "(300001 the platform's answer, 300002 the older reading)"
        )
    return code


def file_mime_or(mime: str | None, default: str) -> str:
    return mime or default
