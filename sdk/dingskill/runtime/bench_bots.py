"""The two bots ``dingskill bench runtime`` measures beside the runtime, on the same emulator:

* ``echo`` — the anchor: a bare bot built only from the real SDK (``ChatbotHandler`` and its
  ``reply_text``), what a developer writes from the SDK's own examples;
* ``raw`` — the harness's own ceiling: no SDK, one WebSocket read loop that ACKs each frame
  and posts the reply with a pooled HTTP client. Nothing can answer faster through this
  emulator and load generator, so if the runtime gets close to it, the harness is the limit.

Run as ``python -m dingskill.runtime.bench_bots echo|raw ENDPOINT APP_KEY APP_SECRET``."""

from __future__ import annotations

import asyncio
import json
import os
import sys

__all__ = ["run_echo", "run_raw"]


def run_echo(endpoint: str, key: str, secret: str) -> None:
    os.environ["DINGTALK_OPENAPI_ENDPOINT"] = endpoint
    import dingtalk_stream

    class Echo(dingtalk_stream.ChatbotHandler):
        async def process(self, callback):
            incoming = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
            self.reply_text((incoming.text.content or "").strip(), incoming)
            return dingtalk_stream.AckMessage.STATUS_OK, "OK"

    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential(key, secret))
    client.register_callback_handler(dingtalk_stream.ChatbotMessage.TOPIC, Echo())
    client.start_forever()


async def _raw(endpoint: str, key: str, secret: str) -> None:
    import aiohttp
    import websockets

    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{endpoint}/v1.0/gateway/connections/open",
            json={
                "clientId": key,
                "clientSecret": secret,
                "subscriptions": [{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}],
            },
        ) as r:
            conn = await r.json()
        async with websockets.connect(f"{conn['endpoint']}?ticket={conn['ticket']}") as ws:

            async def answer(frame: dict) -> None:
                await ws.send(
                    json.dumps(
                        {
                            "code": 200,
                            "headers": {"messageId": frame["headers"]["messageId"]},
                            "message": "OK",
                            "data": "{}",
                        }
                    )
                )
                if frame.get("type") != "CALLBACK":
                    return
                data = json.loads(frame["data"])
                body = {"msgtype": "text", "text": {"content": data["text"]["content"]}}
                async with http.post(data["sessionWebhook"], json=body) as resp:
                    await resp.read()

            async for raw in ws:
                asyncio.get_running_loop().create_task(answer(json.loads(raw)))


def run_raw(endpoint: str, key: str, secret: str) -> None:
    asyncio.run(_raw(endpoint, key, secret))


if __name__ == "__main__":
    kind, endpoint, key, secret = sys.argv[1:5]
    (run_echo if kind == "echo" else run_raw)(endpoint, key, secret)
