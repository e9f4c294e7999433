"""DingTalk Stream mode through the real ``dingtalk-stream`` SDK.

The SDK holds the WebSocket (open connection, reconnect, ping, ACK frames); this channel
registers handlers for the robot-message topic (every message type, see ``parse``), the card
callback topic (button clicks: the clicked intent runs and its answer updates the card through
the callback's ACK response) and EVENT frames (the types listed in ``events.subscribe`` go to
the skills that declare them). Replies go through :class:`~dingskill.runtime.delivery.Delivery`.

Robot messages are pushed once: the platform documents the ACK as diagnostic and does not
resend, so nothing here refuses a message hoping for a redelivery. A stopping runtime closes
the connection first (no new messages), then finishes every message it already received."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from ...skills.conversation import Message, Reply
from ..delivery import Delivery
from ..pipeline import InProgress
from ..proactive import RobotSender
from ..replies import CardStreamer
from .parse import FrameError, parse_robot_message

__all__ = ["StreamChannel", "DEFAULT_ENDPOINT", "CARD_CALLBACK_TOPIC", "event_message"]

DEFAULT_ENDPOINT = "https://api.dingtalk.com"
CARD_CALLBACK_TOPIC = "/v1.0/card/instances/callback"
log = logging.getLogger("dingskill.runtime")


class _PlainWebsockets:
    """The ``websockets`` module as the SDK sees it, connecting without per-message deflate:
    frames are small JSON, and compressing each one cost both ends more CPU than the bytes
    saved (it showed in the runtime's stall stacks). Declining the extension is the client's
    choice in RFC 7692; everything else is the real module."""

    def __init__(self, module) -> None:
        self._module = module

    def __getattr__(self, name: str):
        return getattr(self._module, name)

    def connect(self, *args, **kwargs):
        kwargs.setdefault("compression", None)
        return self._module.connect(*args, **kwargs)


def _import_sdk(endpoint: str | None):
    """Import the SDK with ``endpoint`` (it reads DINGTALK_OPENAPI_ENDPOINT at import time)."""
    if endpoint:
        os.environ["DINGTALK_OPENAPI_ENDPOINT"] = endpoint
    import dingtalk_stream
    import dingtalk_stream.stream as sdk_stream

    if not isinstance(sdk_stream.websockets, _PlainWebsockets):
        sdk_stream.websockets = _PlainWebsockets(sdk_stream.websockets)
    want = os.environ.get("DINGTALK_OPENAPI_ENDPOINT", DEFAULT_ENDPOINT)
    if sdk_stream.DINGTALK_OPENAPI_ENDPOINT != want:  # imported earlier in this process
        sdk_stream.DINGTALK_OPENAPI_ENDPOINT = want
        sdk_stream.DingTalkStreamClient.OPEN_CONNECTION_API = (
            want + "/v1.0/gateway/connections/open"
        )
    return dingtalk_stream, want


class EndpointUnreachable(RuntimeError):
    """The DingTalk OpenAPI endpoint cannot be reached at start-up."""


async def check_reachable(endpoint: str, timeout_s: float = 5.0) -> None:
    """Fail at start-up with one line naming the endpoint, instead of the SDK's endless
    reconnect tracebacks, when nothing answers at ``endpoint``'s host and port."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, asyncio.TimeoutError) as exc:
        reason = (str(exc) or type(exc).__name__).splitlines()[0][:160]
        raise EndpointUnreachable(
            f"cannot reach DingTalk at {endpoint} ({reason}): check "
            "channels.enterprise_chat.endpoint and the network "
            "(`dingskill doctor --config FILE` checks it)"
        ) from None
    writer.close()


class StreamChannel:
    def __init__(
        self,
        pipeline,
        sender,
        app_key: str,
        app_secret: str,
        endpoint: str | None = None,
        skills=None,
        audit=None,
        metrics=None,
        cards_config: dict | None = None,
        events: list[str] | None = None,
        openapi: dict | None = None,
    ) -> None:
        if not app_key or not app_secret:
            raise ValueError(
                "channels.enterprise_chat.auth: app_key and app_secret are required for stream mode "
                "(or DINGSKILL_APP_KEY / DINGSKILL_APP_SECRET)"
            )
        self.pipeline, self.sender, self.skills, self.audit = pipeline, sender, skills, audit
        self.metrics = metrics
        self.sdk, self.endpoint = _import_sdk(endpoint)
        from .frame_guard import guarded_client  # malformed frames: ACK + audit, no reconnect

        self.client = guarded_client(self.sdk, self.sdk.Credential(app_key, app_secret), audit)
        for name in ("dingtalk_stream.client", "dingtalk_stream.handler"):
            logging.getLogger(name).setLevel(logging.WARNING)
        cc = cards_config or {}
        self.cards = CardStreamer(
            self.endpoint,
            app_key,
            app_secret,
            template_id=cc.get("ai_template_id"),
            content_key=cc.get("content_key") or "content",
            callback_type=cc.get("callback_type") or "STREAM",
            metrics=metrics,
            **(openapi or {}),
        )
        self.robot = RobotSender(self.cards.api, app_key)
        self.delivery = Delivery(
            skills,
            sender,
            self.cards,
            self.robot,
            metrics,
            int(cc.get("stream_chunks") or 3),
            store=pipeline.store,
            interactive_template=cc.get("interactive_template_id"),
        )
        self.events = set(events or [])
        self.accepting = True
        self._task: asyncio.Task | None = None
        self._handling: set[asyncio.Task] = set()
        channel = self

        class RobotHandler(self.sdk.CallbackHandler):
            async def process(self, callback):
                return await channel.on_callback(callback)

        class CardHandler(self.sdk.CallbackHandler):
            async def process(self, callback):
                return await channel.on_card_callback(callback.data)

        class EventHandler(self.sdk.EventHandler):
            async def raw_process(self, event):
                status, text = await channel.on_event(event.headers.event_type, event.data)
                ack = channel.sdk.AckMessage()
                ack.code = channel.sdk.AckMessage.STATUS_OK
                ack.headers.message_id = event.headers.message_id
                ack.headers.content_type = "application/json"
                ack.message = text
                ack.data = {"status": status, "message": text}
                return ack

        self.client.register_callback_handler(self.sdk.ChatbotMessage.TOPIC, RobotHandler())
        self.client.register_callback_handler(CARD_CALLBACK_TOPIC, CardHandler())
        if self.events:
            self.client.register_all_event_handler(EventHandler())

    @property
    def connected(self) -> bool:
        ws = getattr(self.client, "websocket", None)
        if ws is None:
            return False
        state = getattr(ws, "state", None)
        return (
            getattr(state, "name", "") == "OPEN"
            if state is not None
            else bool(getattr(ws, "open", False))
        )

    # ------------------------------------------------------------------ robot messages
    async def on_callback(self, callback) -> tuple[int, str]:
        task = asyncio.current_task()
        if task is not None:
            self._handling.add(task)
        try:
            return await self._on_callback(callback)
        finally:
            self._handling.discard(task)

    async def _on_callback(self, callback) -> tuple[int, str]:
        ok, err = self.sdk.AckMessage.STATUS_OK, self.sdk.AckMessage.STATUS_SYSTEM_EXCEPTION
        try:
            message, webhook, expires = parse_robot_message(callback.data, "stream")
        except FrameError as exc:
            if self.audit is not None:
                self.audit.record(
                    "unknown",
                    "-",
                    "message",
                    "rejected",
                    error=str(exc),
                    msg_id=str((callback.data or {}).get("msgId", ""))
                    if isinstance(callback.data, dict)
                    else "",
                )
            return ok, f"ignored: {exc}"

        async def sink(reply: Reply) -> bool:
            return await self.delivery.deliver(message, reply, webhook, expires)

        try:
            await self.pipeline.process(message, sink)
        except InProgress:
            # a second push of a message this process is answering: it will be answered
            # once (by the first attempt); the ACK only says so
            return ok, "in progress"
        except Exception as exc:  # noqa: BLE001 - reported in the ACK (diagnostic)
            log.error("message not handled", extra={"msg_id": message.msg_id, "error": str(exc)})
            return err, "not handled"
        return ok, "OK"

    async def deliver(self, message, reply: Reply, webhook: str | None, expires_ms: int) -> bool:
        return await self.delivery.deliver(message, reply, webhook, expires_ms)

    # ------------------------------------------------------------------ card clicks
    async def on_card_callback(self, data) -> tuple[int, dict | str]:
        """A button click: run the intent the button names; the answer updates the card."""
        ok = self.sdk.AckMessage.STATUS_OK
        from ..cards import handle_card_click

        try:
            response = await handle_card_click(self, data)
        except Exception as exc:  # noqa: BLE001 - the card stays as it was
            log.warning("card click not handled", extra={"error": str(exc)})
            if self.metrics is not None:
                self.metrics.card_callbacks.labels("failed").inc()
            return ok, {}
        if self.metrics is not None:
            self.metrics.card_callbacks.labels("ok" if response else "ignored").inc()
        return ok, response or {}

    # ------------------------------------------------------------------ events
    async def on_event(self, event_type: str | None, data) -> tuple[str, str]:
        """SUCCESS once handled (or not subscribed); LATER when a skill's answer failed and
        the platform should push the event again."""
        if not event_type or event_type not in self.events:
            return "SUCCESS", "not subscribed"
        from ..events import handle_event

        try:
            sent = await handle_event(self, event_type, data if isinstance(data, dict) else {})
        except Exception as exc:  # noqa: BLE001 - ask for a redelivery
            log.warning("event not handled", extra={"event": event_type, "error": str(exc)})
            if self.metrics is not None:
                self.metrics.events.labels(event_type, "later").inc()
            return "LATER", str(exc)[:200]
        if self.metrics is not None:
            self.metrics.events.labels(event_type, "ok" if sent else "ignored").inc()
        return "SUCCESS", "success"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await check_reachable(self.endpoint)
        self._task = asyncio.create_task(self.client.start())

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Stop taking messages (close the connection first), then finish every message
        already received: nothing that reached this process is left unanswered unless it
        takes longer than ``drain_timeout``."""
        self.accepting = False
        ws = getattr(self.client, "websocket", None)
        if self._task is not None:
            # the SDK catches one CancelledError (then sleeps): cancel until the task ends
            for _ in range(5):
                self._task.cancel()
                done, _ = await asyncio.wait({self._task}, timeout=0.5)
                if done:
                    break
        if ws is not None:
            try:
                await ws.close()
            except Exception:  # noqa: BLE001 - already closed
                pass
        deadline = time.monotonic() + drain_timeout
        while (self.pipeline.inflight > 0 or self._handling) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.pipeline.inflight or self._handling:
            log.error(
                "stopped with messages still being handled",
                extra={"inflight": self.pipeline.inflight, "handling": len(self._handling)},
            )
        await self.cards.close()

    def describe(self) -> dict:
        return {
            "mode": "stream",
            "endpoint": self.endpoint,
            "connected": self.connected,
            "events": sorted(self.events),
        }


def event_message(event_type: str, data: dict) -> Message:
    """A Message for a skill's event response (its conversation is the event's group)."""
    return Message(
        text="",
        sender_id=str(data.get("operator") or data.get("Operator") or "system"),
        conversation_id=str(
            data.get("openConversationId")
            or data.get("OpenConversationId")
            or data.get("ChatId")
            or ""
        ),
        conversation_type="group",
        msg_id="",
        channel="event",
        msgtype=f"event:{event_type}",
    )
