"""A bot written the way DingTalk's own samples write one: the real ``dingtalk-stream`` SDK,
a ChatbotHandler replying through the session webhook. Run as a subprocess by the tests:

    DINGTALK_OPENAPI_ENDPOINT=http://127.0.0.1:PORT python sdk_bot.py KEY SECRET [mode]

mode: ``echo`` (reply "echo: <text>"), ``markdown``, or ``noack`` (never answers, never ACKs).
"""

from __future__ import annotations

import asyncio
import sys

import dingtalk_stream
from dingtalk_stream import AckMessage


class Bot(dingtalk_stream.ChatbotHandler):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    async def process(self, callback):
        msg = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
        if self.mode == "noack":
            await asyncio.Event().wait()
        text = msg.text.content.strip()
        if self.mode == "markdown":
            self.reply_markdown("回复", f"**{text}**", msg)
        else:
            self.reply_text(f"echo: {text} | {msg.conversation_type} | {msg.sender_staff_id}", msg)
        return AckMessage.STATUS_OK, "OK"


def main() -> None:
    key, secret = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "echo"
    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential(key, secret))
    client.register_callback_handler(dingtalk_stream.chatbot.ChatbotMessage.TOPIC, Bot(mode))
    client.start_forever()


if __name__ == "__main__":
    main()
