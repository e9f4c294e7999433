"""Malformed Stream frames: always answered with an ACK and an audit record, never a reconnect.

The official SDK parses each WebSocket frame with ``json.loads`` inside its receive loop, so one
frame that is not JSON ends the connection (and it reconnects, again and again if the frame is
resent); a frame whose ``data`` is not JSON, or whose robot message has the wrong shape, raises
inside the SDK's task and is never ACKed. :func:`guarded_client` gives the channel a client
that turns such frames into a ``MALFORMED`` message, ACKs every frame that names a message id,
and writes an audit record (``operation: frame``, ``result: rejected``) for each.
"""

from __future__ import annotations

import json
import logging

__all__ = ["MALFORMED", "guarded_client"]

MALFORMED = "MALFORMED"
log = logging.getLogger("dingskill.runtime")


class _TolerantJson:
    """Stands in for ``json`` in the SDK's stream module: a frame that is not JSON becomes a
    ``MALFORMED`` message instead of an exception in the receive loop."""

    def __getattr__(self, name):
        return getattr(json, name)

    @staticmethod
    def loads(raw, *args, **kw):
        try:
            return json.loads(raw, *args, **kw)
        except (ValueError, TypeError) as exc:
            return {"type": MALFORMED, "error": f"frame is not JSON ({exc})", "size": len(raw)}


def guarded_client(sdk, credential, audit=None):
    """A ``DingTalkStreamClient`` that ACKs and audits malformed frames."""
    import dingtalk_stream.stream as stream_module

    stream_module.json = _TolerantJson()

    class GuardedClient(sdk.DingTalkStreamClient):
        def _reject(self, frame, error: str) -> None:
            headers = frame.get("headers") if isinstance(frame, dict) else None
            mid = headers.get("messageId", "") if isinstance(headers, dict) else ""
            log.warning("malformed frame", extra={"error": error, "message_id": mid})
            if audit is not None:
                audit.record(
                    "unknown", "-", "frame", "rejected", error=error[:300], msg_id=str(mid)[:100]
                )
            return mid

        async def route_message(self, json_message):
            if not isinstance(json_message, dict) or json_message.get("type") == MALFORMED:
                error = (
                    json_message.get("error", "malformed")
                    if isinstance(json_message, dict)
                    else f"frame is a JSON {type(json_message).__name__}, not an object"
                )
                self._reject(json_message, error)
                return ""
            try:
                return await super().route_message(json_message)
            except Exception as exc:  # noqa: BLE001 - any frame the SDK cannot take
                mid = self._reject(json_message, f"{type(exc).__name__}: {exc}")
                if mid and self.websocket is not None:
                    ack = sdk.AckMessage()
                    ack.code = sdk.AckMessage.STATUS_OK
                    ack.headers.message_id = mid
                    ack.headers.content_type = "application/json"
                    ack.data = {"response": f"ignored: malformed frame ({type(exc).__name__})"}
                    await self.websocket.send(json.dumps(ack.to_dict()))
                return ""

    return GuardedClient(credential)
