"""Bots built only from the official ``dingtalk-stream`` SDK, used the way its documentation
and samples use it (written for these tests; run as subprocesses):

    DINGTALK_OPENAPI_ENDPOINT=http://127.0.0.1:PORT python sdk_bots.py KEY SECRET \
        [--topics robot,events,cards,graph] [--mode answer|noack]

* robot (``ChatbotHandler``): answers every message type; text commands: ``1+2`` style sums
  (like the SDK's calculator sample), ``AI卡片`` (``AICardReplier``: start, stream, finish),
  ``审批卡片`` (``CardReplier`` create + deliver, then private data through ``put_card_data``),
  ``互动卡片`` (``reply_card``), ``离线提示`` (``set_off_duty_prompt``), ``令牌`` (a fresh
  client's ``get_access_token``), ``快速流式N`` (N ``AICardReplier.streaming`` calls without a
  pause), anything else is echoed; a type it does not read (``unknownMsgType``) is named;
* events (``EventHandler``): data ``{"later": N}`` answers LATER N times (the protocol's ACK
  data), otherwise the SDK's own ACK (code 200, no status);
* cards (``CallbackHandler`` on the card-callback topic): answers with new card data built
  from the click's private data, as the SDK's card-callback sample does;
* graph (``GraphHandler``): replies through the request's session webhook with an AI card.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import dingtalk_stream
import requests
from dingtalk_stream import AckMessage
from dingtalk_stream.card_replier import AICardReplier, CardReplier
from dingtalk_stream.frames import Headers

AI_TEMPLATE = "382e4302-551d-4880-bf29-a30acfab2e71.schema"
APPROVAL_TEMPLATE = "589420e2-c1e2-46ef-a5ed-b8728e654da9.schema"


class Assistant(dingtalk_stream.ChatbotHandler):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def _download(self, code: str) -> bytes:
        return requests.get(self.get_image_download_url(code), timeout=10).content

    async def process(self, callback):
        msg = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
        if self.mode == "noack":
            await asyncio.Event().wait()
        kind = msg.message_type
        if kind == "text":
            await asyncio.to_thread(self._text, msg, msg.text.content)
        elif kind == "richText":
            texts = [t.strip() for t in msg.get_text_list()]
            images = msg.get_image_list()
            sizes = [len(self._download(c)) for c in images]
            self.reply_text(f"rich: {'|'.join(texts)} images={sizes}", msg)
        elif kind == "picture":
            data = self._download(msg.image_content.download_code)
            self.reply_text(f"picture: {len(data)} bytes", msg)
        elif kind == "audio":
            self.reply_text(f"audio: {msg.extensions['content']['recognition']}", msg)
        elif kind in ("file", "video"):
            content = msg.extensions["content"]
            data = self._download(content["downloadCode"])
            name = content.get("fileName") or content.get("videoType")
            self.reply_text(f"{kind}: {name} {len(data)} bytes", msg)
        else:  # unknownMsgType and any type this bot does not read: say what came
            placeholder = (msg.extensions.get("content") or {}).get("unknownMsgType")
            self.reply_text(f"unsupported: {kind} {placeholder}", msg)
        return AckMessage.STATUS_OK, "OK"

    def _text(self, msg, raw: str) -> None:
        text = raw.strip()
        if text == "AI卡片":
            replier = AICardReplier(self.dingtalk_client, msg)
            card_id = replier.start(AI_TEMPLATE, {"content": ""})
            replier.streaming(
                card_id, "content", "您好，", append=True, finished=False, failed=False
            )
            replier.streaming(
                card_id, "content", "您好，会议室已订好", append=False, finished=True, failed=False
            )
            replier.finish(card_id, {"content": "您好，会议室已订好"})
        elif text == "令牌":  # a fresh SDK client asks for a token: the platform's own again
            fresh = dingtalk_stream.DingTalkStreamClient(self.dingtalk_client.credential)
            self.reply_text(f"token: {fresh.get_access_token()}", msg)
        elif text.startswith("快速流式"):  # AICardReplier.streaming N times, no pause
            replier = AICardReplier(self.dingtalk_client, msg)
            card_id = replier.start(AI_TEMPLATE, {"content": ""})
            for i in range(int(text.removeprefix("快速流式") or 30)):
                replier.streaming(
                    card_id, "content", f"{i} ", append=True, finished=False, failed=False
                )
            self.reply_text(f"streamed: {card_id}", msg)
        elif text == "审批卡片":
            replier = CardReplier(self.dingtalk_client, msg)
            card_id = replier.create_and_send_card(
                APPROVAL_TEMPLATE, {"title": "请假审批", "status": "待处理"}
            )
            replier.put_card_data(
                card_id,
                {"title": "请假审批", "status": "待处理"},
                privateData={msg.sender_staff_id: {"cardParamMap": {"role": "审批人"}}},
                cardUpdateOptions={"updateCardDataByKey": True, "updatePrivateDataByKey": True},
            )
            self.reply_text(f"card: {card_id}", msg)
        elif text == "互动卡片":
            card_biz_id = self.reply_card({"title": "周报", "contents": []}, msg)
            self.reply_text(f"interactive: {card_biz_id}", msg)
        elif text == "离线提示":
            result = self.set_off_duty_prompt("下班了，明早九点再来找我。")
            self.reply_text(f"off-duty: {json.dumps(result)}", msg)
        elif "+" in text:  # the SDK calculator sample's arithmetic
            try:
                total = sum(float(p.strip()) for p in text.split("+"))
                answer = int(total) if total.is_integer() else total
            except ValueError as exc:
                answer = f"Error: {exc}"
            self.reply_text(f"Q: {text}\nA: {answer}", msg)
        else:
            self.reply_text(f"echo: {text} | {msg.conversation_type} | {msg.sender_staff_id}", msg)


class Events(dingtalk_stream.EventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.later: dict[str, int] = {}

    async def process(self, event):
        return AckMessage.STATUS_OK, "OK"

    async def raw_process(self, event):
        wanted = int((event.data or {}).get("later", 0))
        seen = self.later.get(event.headers.event_id, 0)
        if seen >= wanted:
            return await super().raw_process(event)  # the SDK's own ACK
        self.later[event.headers.event_id] = seen + 1
        ack = AckMessage()
        ack.code = AckMessage.STATUS_OK
        ack.headers.message_id = event.headers.message_id
        ack.headers.content_type = Headers.CONTENT_TYPE_APPLICATION_JSON
        ack.message = "OK"
        ack.data = {"status": "LATER", "message": "busy, later please"}
        return ack


class CardClicks(dingtalk_stream.CallbackHandler):
    async def process(self, callback):
        click = dingtalk_stream.CardCallbackMessage.from_dict(callback.data)
        params = click.content.get("cardPrivateData", {}).get("params", {})
        actions = click.content.get("cardPrivateData", {}).get("actionIds", [])
        response = {
            "cardData": {
                "cardParamMap": {"status": f"{'/'.join(actions)} by {params.get('role', '?')}"}
            },
            "privateData": {click.user_id: {"cardParamMap": {"clicked": "true"}}},
        }
        return AckMessage.STATUS_OK, response


class Graph(dingtalk_stream.GraphHandler):
    async def process(self, callback):
        request = dingtalk_stream.GraphRequest.from_dict(callback.data)
        body = json.loads(request.body)
        await self.reply_markdown(body["sessionWebhook"], f"graph: {request.request_line.uri}")
        return AckMessage.STATUS_OK, self.get_success_response({"city": body.get("city")}).to_dict()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("key")
    p.add_argument("secret")
    p.add_argument("--topics", default="robot,events,cards,graph")
    p.add_argument("--mode", default="answer")
    args = p.parse_args()
    topics = set(args.topics.split(","))
    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential(args.key, args.secret))
    if "robot" in topics:
        client.register_callback_handler(
            dingtalk_stream.chatbot.ChatbotMessage.TOPIC, Assistant(args.mode)
        )
    if "events" in topics:
        client.register_all_event_handler(Events())
    if "cards" in topics:
        client.register_callback_handler(
            dingtalk_stream.CallbackHandler.TOPIC_CARD_CALLBACK, CardClicks()
        )
    if "graph" in topics:
        client.register_callback_handler(dingtalk_stream.graph.GraphMessage.TOPIC, Graph())
    client.start_forever()


if __name__ == "__main__":
    main()
