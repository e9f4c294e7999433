"""DingTalk Stream mode through the real ``dingtalk-stream`` SDK.

The SDK holds the WebSocket (open connection, reconnect, ping, ACK frames); this channel
registers a callback handler for the robot-message topic that hands each message to the
Pipeline and sends the reply through the message's session webhook (or streams an AI card
for skills holding ``Card.Streaming.Write``). Only handled messages are ACKed with 200:
while shutting down, or while another replica still holds a redelivered message, the ACK
carries an error code so the platform delivers it again."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from ...skills.conversation import Reply
from ..pipeline import InProgressElsewhere
from ..replies import CardStreamer
from .parse import FrameError, parse_robot_message

__all__ = ["StreamChannel", "DEFAULT_ENDPOINT"]

DEFAULT_ENDPOINT = "https://api.dingtalk.com"
log = logging.getLogger("dingskill.runtime")


def _import_sdk(endpoint: str | None):
    """Import the SDK with ``endpoint`` (it reads DINGTALK_OPENAPI_ENDPOINT at import time)."""
    if endpoint:
        os.environ["DINGTALK_OPENAPI_ENDPOINT"] = endpoint
    import dingtalk_stream
    import dingtalk_stream.stream as sdk_stream

    want = os.environ.get("DINGTALK_OPENAPI_ENDPOINT", DEFAULT_ENDPOINT)
    if sdk_stream.DINGTALK_OPENAPI_ENDPOINT != want:  # imported earlier in this process
        sdk_stream.DINGTALK_OPENAPI_ENDPOINT = want
        sdk_stream.DingTalkStreamClient.OPEN_CONNECTION_API = (
            want + "/v1.0/gateway/connections/open"
        )
    return dingtalk_stream, want


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
    ) -> None:
        if not app_key or not app_secret:
            raise ValueError(
                "channels.enterprise_chat.auth: app_key and app_secret are required for stream mode "
                "(or DINGSKILL_APP_KEY / DINGSKILL_APP_SECRET)"
            )
        self.pipeline, self.sender, self.skills, self.audit = pipeline, sender, skills, audit
        self.sdk, self.endpoint = _import_sdk(endpoint)
        self.client = self.sdk.DingTalkStreamClient(self.sdk.Credential(app_key, app_secret))
        for name in ("dingtalk_stream.client", "dingtalk_stream.handler"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.cards = CardStreamer(self.endpoint, app_key, app_secret)
        self.accepting = True
        self._task: asyncio.Task | None = None
        channel = self

        class RobotHandler(self.sdk.CallbackHandler):
            async def process(self, callback):
                return await channel.on_callback(callback)

        self.client.register_callback_handler(self.sdk.ChatbotMessage.TOPIC, RobotHandler())

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

    async def on_callback(self, callback) -> tuple[int, str]:
        ok, err = self.sdk.AckMessage.STATUS_OK, self.sdk.AckMessage.STATUS_SYSTEM_EXCEPTION
        if not self.accepting:
            return err, "shutting down: deliver to another connection"
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
            return ok, f"ignored: {exc}"  # handled: a redelivery would not make it valid

        async def sink(reply: Reply) -> bool:
            return await self.deliver(message, reply, webhook, expires)

        try:
            await self.pipeline.process(message, sink)
        except InProgressElsewhere:
            return err, "in progress elsewhere"
        except Exception as exc:  # noqa: BLE001 - not handled: let the platform redeliver it
            log.error("message not handled", extra={"msg_id": message.msg_id, "error": str(exc)})
            return err, "not handled"
        return ok, "OK"

    async def deliver(self, message, reply: Reply, webhook: str | None, expires_ms: int) -> bool:
        perms = self.skills.permissions(reply.skill_id) if self.skills is not None else []
        if (
            "Card.Streaming.Write" in perms
            and reply.format in ("text", "markdown")
            and not reply.error
        ):
            try:
                step = max(1, len(reply.text) // 3)
                chunks = [reply.text[i : i + step] for i in range(0, len(reply.text), step)] or [""]
                await self.cards.stream(message.conversation_id, chunks)
                return True
            except Exception as exc:  # noqa: BLE001 - fall back to the session webhook
                log.warning(
                    "AI card streaming failed; replying through the webhook",
                    extra={"error": str(exc)},
                )
        if not webhook:
            reply.error = (reply.error or "") + " no session webhook"
            return False
        if expires_ms and expires_ms < time.time() * 1000:
            reply.error = "session webhook expired"
            return False
        at = message.sender_id if message.conversation_type == "group" else None
        result = await self.sender.send(webhook, reply, at_user=at)
        if not result.ok:
            reply.error = f"reply failed after {result.attempts} attempt(s): {result.error}"
        return result.ok

    async def start(self) -> None:
        self._task = asyncio.create_task(self.client.start())

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop taking new messages, finish the ones in flight, close the connection."""
        self.accepting = False
        deadline = time.monotonic() + drain_timeout
        while self.pipeline.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
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
        await self.cards.close()

    def describe(self) -> dict:
        return {"mode": "stream", "endpoint": self.endpoint, "connected": self.connected}
