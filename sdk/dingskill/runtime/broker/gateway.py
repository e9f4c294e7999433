"""``dingskill gateway``: holds the Stream connection (through the real dingtalk-stream SDK)
or serves the HTTP webhook, validates each robot message, publishes it as a persistent
message to its conversation's shard queue and waits for the broker's confirm; only then is
the platform ACKed (Stream: code 200; webhook: HTTP 200). Several gateways may run side by
side: they share nothing but the broker."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from ...security.redact import Redactor
from ..channels.parse import FrameError, parse_robot_message
from ..channels.stream import StreamChannel
from ..channels.webhook import MAX_BODY, WebhookChannel
from ..metrics import Metrics
from ..server import make_server
from .amqp import (
    HDR_ATTEMPT,
    HDR_CHANNEL,
    HDR_PUBLISHED_MS,
    BrokerUnavailable,
    Topology,
    connect,
    encode,
    login_of,
    shard_of,
)
from .auth import MessageKeys
from .metrics import BrokerMetrics
from .service import run_until_signal, service_app

__all__ = ["Gateway", "Publisher", "NotQueued"]

log = logging.getLogger("dingskill.gateway")


class NotQueued(RuntimeError):
    """The broker did not confirm the message (down, or it refused it)."""


class Publisher:
    """Persistent publishes with publisher confirms over one robust connection."""

    def __init__(self, broker: dict, name: str, metrics: BrokerMetrics, keys: MessageKeys) -> None:
        self.broker, self.name, self.metrics, self.keys = broker, name, metrics, keys
        self.topology = Topology.from_config(broker)
        self.timeout = float(broker["confirm_timeout_s"])
        self.connection = self.channel = self.exchange = None
        self.user_id = login_of(broker["url"])  # parsed once, not per message

    async def start(self) -> None:
        self.connection = await connect(self.broker, self.name)
        self.channel = await self.connection.channel(publisher_confirms=True)
        await self.topology.declare(self.channel)
        self.exchange = await self.channel.get_exchange(self.topology.exchange, ensure=False)

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.is_closed

    async def publish(self, data: dict, channel: str) -> None:
        """Publish one robot message; returns once the broker confirmed it. While the broker
        is away (restarting, say) it tries again until ``broker.publish_retry_s``: the platform
        does not resend robot messages, so the frame waits un-ACKed meanwhile."""
        deadline = time.monotonic() + float(self.broker.get("publish_retry_s", 0) or 0)
        while True:
            try:
                return await self._publish_once(data, channel)
            except NotQueued:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _publish_once(self, data: dict, channel: str) -> None:
        import aio_pika

        conv = str(data.get("conversationId") or "")
        body, msg_id = encode(data), str(data.get("msgId") or "")
        msg = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=msg_id,
            # the broker checks user_id against the connection's login (defence in depth)
            user_id=self.user_id,
            headers={
                HDR_CHANNEL: channel,
                HDR_ATTEMPT: 0,
                HDR_PUBLISHED_MS: int(time.time() * 1000),
                **self.keys.sign(body, msg_id, channel),
            },
        )
        t0 = time.perf_counter()
        try:
            if self.exchange is None:
                raise NotQueued("not connected to the broker")
            # the timeout inside the publish (no task per message, as wait_for makes; the
            # client keeps the cancellation in this task)
            await self.exchange.publish(
                msg,
                routing_key=str(shard_of(conv, self.topology.shards)),
                mandatory=True,
                timeout=self.timeout,
            )
        except NotQueued:
            self.metrics.publish_failures.inc()
            raise
        except Exception as exc:  # noqa: BLE001 - nack, return, closed channel, timeout
            self.metrics.publish_failures.inc()
            raise NotQueued(f"{type(exc).__name__}: {exc}") from None
        self.metrics.publish_latency.observe(time.perf_counter() - t0)
        self.metrics.published.labels(self.topology.queue).inc()

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


class _GatewayStream(StreamChannel):
    """The Stream channel of ``dingskill run`` whose callback publishes instead of answering."""

    def __init__(self, gateway: Gateway, app_key, app_secret, endpoint) -> None:
        self.gateway = gateway
        super().__init__(gateway, None, app_key, app_secret, endpoint)

    async def on_callback(self, callback) -> tuple[int, str]:
        ok, err = self.sdk.AckMessage.STATUS_OK, self.sdk.AckMessage.STATUS_SYSTEM_EXCEPTION
        if not self.accepting:
            return err, "shutting down: deliver to another connection"
        try:
            await self.gateway.accept(callback.data, "stream")
        except FrameError as exc:
            return ok, f"ignored: {exc}"  # a redelivery would not make it valid
        except NotQueued as exc:
            log.error("message not queued", extra={"error": str(exc)})
            return err, "not queued"
        return ok, "OK"


class Gateway:
    def __init__(self, config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.bm = BrokerMetrics(self.metrics.registry)
        self.redactor = Redactor([config.app_secret or ""])
        self.publisher = Publisher(
            config["broker"], "dingskill-gateway", self.bm, MessageKeys.from_config(config)
        )
        self.inflight = 0  # read by the channel's drain on stop
        self.store = None  # the channel's reply path is never used here
        ch = config["channels"]["enterprise_chat"]
        self.stream = self.webhook = None
        if ch["mode"] == "stream":
            self.stream = _GatewayStream(self, config.app_key, config.app_secret, ch["endpoint"])
        else:
            self.webhook = WebhookChannel(
                self,
                config.app_secret,
                ch["webhook"]["timeout"],
                max_skew_s=ch["webhook"]["max_skew_s"],
            )
        self.server = None
        self._tasks: list[asyncio.Task] = []

    async def accept(self, data, channel: str) -> None:
        """Validate (FrameError if not a robot message we take) and publish (NotQueued)."""
        parse_robot_message(data, channel)
        self.inflight += 1
        try:
            await self.publisher.publish(data, channel)
        finally:
            self.inflight -= 1

    async def readiness(self) -> dict:
        channel = self.stream or self.webhook
        return {"broker": self.publisher.connected, "channel": bool(channel.connected)}

    async def _webhook(self, request):
        from starlette.responses import JSONResponse

        from ..http_limits import BodyError, read_json

        hook = self.webhook
        ts, signature = request.headers.get("timestamp"), request.headers.get("sign")
        reason = hook.verify(ts, signature)  # from the headers, before the body is read
        if reason:
            return JSONResponse({"errcode": 401, "errmsg": reason}, status_code=401)
        if not hook.accepting:
            return JSONResponse({"errcode": 503, "errmsg": "shutting down"}, status_code=503)
        try:
            data = await read_json(request, MAX_BODY)
        except BodyError as exc:
            return exc.response("errmsg")
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
        reason = hook.check_replay(ts, signature, canonical)
        if reason:
            return JSONResponse({"errcode": 401, "errmsg": reason}, status_code=401)
        try:
            await self.accept(data, "webhook")
        except (ValueError, FrameError) as exc:
            return JSONResponse(
                {"errcode": 400, "errmsg": f"not a robot message: {exc}"}, status_code=400
            )
        except NotQueued:
            return JSONResponse({"errcode": 503, "errmsg": "not queued"}, status_code=503)
        return JSONResponse({"msgtype": "empty"})  # the worker answers via the session webhook

    async def start(self) -> None:
        from starlette.routing import Route

        await self.publisher.start()
        self.bm.connected.set(1)
        routes = []
        if self.webhook is not None:
            path = self.config.get("channels.enterprise_chat.webhook.path")
            routes.append(Route(path, self._webhook, methods=["POST"]))
        self.server = make_server(service_app(self.metrics, self.readiness, routes), self.config)
        self._tasks.append(asyncio.create_task(self.server.serve()))
        self._tasks.append(asyncio.create_task(self._watch()))
        while not self.server.started:
            if self._tasks[0].done():
                self._tasks[0].result()
            await asyncio.sleep(0.01)
        await (self.stream or self.webhook).start()
        log.info(
            "gateway started", extra={"port": self.port, "queue": self.config.get("broker.queue")}
        )

    async def _watch(self) -> None:
        while True:
            self.bm.connected.set(1 if self.publisher.connected else 0)
            await asyncio.sleep(1.0)

    @property
    def port(self) -> int:
        for s in getattr(self.server, "servers", []):
            for sock in s.sockets:
                return sock.getsockname()[1]
        return self.config.get("server.port")

    async def stop(self) -> None:
        await (self.stream or self.webhook).stop()
        if self.server is not None:
            self.server.should_exit = True
        for t in self._tasks[1:]:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.publisher.close()
        log.info("gateway stopped")

    async def run(self) -> None:
        await run_until_signal(self.start, self.stop)


__all__ += ["BrokerUnavailable"]
