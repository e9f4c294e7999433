"""The emulator as the official dingtalk-stream SDK sees it: every message type, cards, events,
card clicks, graph requests, SYSTEM frames and subscriptions, through SDK-only bots."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from dingskill.emulator import Emulator, EmulatorClient

from .conftest import KEY, SECRET, t


@pytest.fixture
def emu(make_emulator) -> Emulator:
    return make_emulator(ack_timeout=1.0, ping_interval=0.3)


def _text(body: dict) -> str:
    return body["text"]["content"]


def test_every_message_type_through_the_sdk(emu, start_bot):
    start_bot(emu)
    one = emu.send("你好", sender_id="staff-1")
    assert _text(emu.wait_reply(one, t(10))) == "echo: 你好 | 1 | staff-1"
    assert emu.messages[one].payload["robotCode"] == KEY  # robotCode is the client id
    payload = emu.messages[one].payload
    assert payload["sessionWebhookExpiredTime"] - payload["createAt"] == 90 * 60 * 1000

    # group: the platform removes "@name" and keeps the blank; the SDK's calculator then works
    grp = emu.send("@办公助手 3 + 4", conversation_type="group", sender_id="staff-2")
    assert _text(emu.wait_reply(grp, t(10))) == "Q: 3 + 4\nA: 7"
    g = emu.messages[grp].payload
    assert g["text"]["content"] == " 3 + 4" and g["isInAtList"] is True and g["atUsers"]
    assert g["conversationType"] == "2" and g["conversationTitle"]

    rich = emu.send(
        msgtype="richText",
        rich_text=[{"text": "看看这张"}, {"type": "picture", "downloadCode": "dc-rich-1"}],
        file_bytes=b"\x89PNG" + b"0" * 96,
    )
    assert _text(emu.wait_reply(rich, t(10))) == "rich: 看看这张 images=[100]"

    audio = emu.send(msgtype="audio", recognition="明天上午十点开会", duration=2500)
    assert _text(emu.wait_reply(audio, t(10))) == "audio: 明天上午十点开会"
    assert emu.messages[audio].payload["content"]["duration"] == 2500

    pic = emu.send(msgtype="picture", file_bytes=b"x" * 321)
    assert _text(emu.wait_reply(pic, t(10))) == "picture: 321 bytes"

    doc = emu.send(msgtype="file", file_name="报销单.xlsx", file_bytes=b"y" * 42)
    assert _text(emu.wait_reply(doc, t(10))) == "file: 报销单.xlsx 42 bytes"

    video = emu.send(msgtype="video", file_bytes=b"z" * 7)
    assert _text(emu.wait_reply(video, t(10))) == "video: mp4 7 bytes"

    ext = emu.send("你们几点下班", sender_id="outsider", external=True)
    assert _text(emu.wait_reply(ext, t(10))) == "echo: 你们几点下班 | 1 | None"
    p = emu.messages[ext].payload
    assert "senderStaffId" not in p and p["senderCorpId"] != p["chatbotCorpId"]

    # a group message that does not @ the robot is not pushed at all
    quiet = emu.send("大家好", conversation_type="group", at_bot=False)
    assert emu.message(quiet)["attempts"] == 0 and emu.message(quiet)["not_pushed"]


def test_ai_cards_in_group_and_single_chat_with_the_sdk_replier(emu, start_bot):
    start_bot(emu)
    emu.send("AI卡片", conversation_type="group", conversation_id="cid-team", sender_id="s-9")
    emu.send("AI卡片", sender_id="s-10")
    emu.wait_for(lambda: sum(bool(c["updates"]) for c in emu.cards.values()) == 2, t(15))
    spaces = set()
    for card in emu.cards.values():
        (delivery,) = card["deliveries"]
        assert [r["success"] for r in delivery["results"]] == [True], delivery
        spaces.add(delivery["body"]["openSpaceId"])
        params = card["cardData"]["cardParamMap"]
        assert params["content"] == "您好，会议室已订好" and params["flowStatus"] == "3"
        assert [s["isFinalize"] for s in card["stream"]] == [False, True]
    assert spaces == {"dtv1.card//IM_GROUP.cid-team", "dtv1.card//IM_ROBOT.s-10"}


def test_card_click_carries_private_data_and_the_ack_updates_the_card(emu, start_bot):
    start_bot(emu)
    msg = emu.send("审批卡片", sender_id="boss-1")
    track = _text(emu.wait_reply(msg, t(10))).removeprefix("card: ")
    assert emu.cards[track]["privateData"]["boss-1"]["cardParamMap"] == {"role": "审批人"}
    click = emu.card_click(track, "boss-1", "agree", {"comment": "同意"})
    emu.wait_for(lambda: emu.push(click)["acked"], t(10))
    sent = json.loads(emu.push(click)["payload"]["content"])
    assert sent["cardPrivateData"] == {
        "actionIds": ["agree"],
        "params": {"role": "审批人", "comment": "同意"},
    }
    card = emu.cards[track]
    assert card["cardData"]["cardParamMap"]["status"] == "agree by 审批人"
    assert card["privateData"]["boss-1"]["cardParamMap"]["clicked"] == "true"

    inter = emu.send("互动卡片", conversation_type="group", conversation_id="cid-weekly")
    biz = _text(emu.wait_reply(inter, t(10))).removeprefix("interactive: ")
    assert emu.cards[biz]["kind"] == "interactive"
    assert emu.cards[biz]["created"]["openConversationId"] == "cid-weekly"


def test_events_success_later_and_graph_requests(emu, start_bot):
    start_bot(emu)
    plain = emu.push_event("chat_add_member", {"openConversationId": "cid-1", "userIds": ["u1"]})
    later = emu.push_event("user_add_org", {"later": 2, "userId": ["u2"]})
    emu.wait_for(lambda: emu.push(plain)["acked"] and emu.push(later)["acked"], t(20))
    assert emu.push(plain)["attempts"] == 1 and emu.push(plain)["ack_status"] == "SUCCESS"
    assert emu.push(later)["attempts"] == 3  # LATER twice, then SUCCESS
    assert emu.counters["later"] == 2

    g = emu.graph_request("/v1/actions/weather/get", {"city": "杭州"})
    body = emu.wait_reply(g, t(10))
    assert (
        body["contentType"] == "ai_card"
        and "graph: /v1/actions" in (body["content"]["cardData"]["content"])
    )
    emu.wait_for(lambda: emu.push(g)["acked"], t(10))
    assert json.loads(emu.push(g)["response"]["body"]) == {"city": "杭州"}


def test_ping_opaque_server_pings_disconnect_and_reconnect(emu, start_bot):
    start_bot(emu)
    assert emu.system("ping") == 1
    emu.wait_for(lambda: emu.counters["pongs"] >= 3, t(10))  # ours + the server's own pings
    assert emu.counters["bad_pongs"] == 0
    # disconnect: the Python SDK closes the socket itself and opens a new connection
    assert emu.system("disconnect", reason="connection is expired", close_after=30) == 1
    emu.wait_for(lambda: emu.counters["opened"] == 2 and emu.connections() == 1, t(20))
    (old,) = [c for c in emu.connection_views() if c["closed"]]
    assert old["disconnect_reason"] == "connection is expired" and old["closed_by"] == "client"
    after = emu.send("重连后还在吗")
    assert _text(emu.wait_reply(after, t(10))).startswith("echo: 重连后还在吗")


def test_server_closes_a_client_that_waits_after_disconnect(make_emulator):
    """Java/Node-style clients wait for the server to close after ``disconnect``."""
    emu = make_emulator(disconnect_close_delay=0.3, ping_interval=0)
    opened = httpx.post(
        f"{emu.url}/v1.0/gateway/connections/open",
        json={
            "clientId": KEY,
            "clientSecret": SECRET,
            "subscriptions": [{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}],
        },
    ).json()

    async def client():
        async with websockets.connect(f"{opened['endpoint']}?ticket={opened['ticket']}") as ws:
            await asyncio.to_thread(emu.wait_connections, 1)
            await asyncio.to_thread(emu.system, "disconnect", None, "rebalance")
            frame = json.loads(await ws.recv())
            assert frame["type"] == "SYSTEM" and frame["headers"]["topic"] == "disconnect"
            assert json.loads(frame["data"]) == {"reason": "rebalance"}
            # no ACK, no close from us: the server closes after its delay
            await asyncio.wait_for(ws.wait_closed(), t(10))

    asyncio.run(client())
    (conn,) = emu.connection_views()
    assert conn["closed_by"] == "server"
    with pytest.raises(Exception):  # noqa: B017 - a ticket is single-use
        asyncio.run(websockets.connect(f"{opened['endpoint']}?ticket={opened['ticket']}"))


def test_only_subscribed_topics_are_pushed(emu, start_bot):
    start_bot(emu, topics="robot")  # no events, no card callbacks
    (conn,) = emu.connection_views()
    assert conn["subscriptions"] == [{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}]
    ev = emu.push_event("user_leave_org", {"userId": ["u3"]})
    msg = emu.send("审批卡片", sender_id="boss-2")
    track = _text(emu.wait_reply(msg, t(10))).removeprefix("card: ")
    click = emu.card_click(track, "boss-2", "agree")
    assert emu.push(ev)["attempts"] == 0 and emu.push(click)["not_pushed"]
    start_bot(emu, topics="events")  # events wait for a subscriber, then arrive
    emu.wait_for(lambda: emu.push(ev)["acked"], t(10))


def test_robot_messages_pushed_once_or_until_acked(emu, start_bot):
    start_bot(emu, topics="robot", mode="noack")
    once = emu.send("没人回答")
    emu.wait_for(lambda: emu.message(once)["attempts"] == 1, t(5))
    with EmulatorClient(emu.url) as client:
        assert client.settings(robot_delivery="until_ack")["robot_delivery"] == "until_ack"
        again = client.send("再推一次")
        emu.wait_for(lambda: emu.message(again)["attempts"] >= 2, t(10))
    assert emu.message(once)["attempts"] == 1  # documented: fire-and-forget


def test_offline_robot_gets_the_off_duty_prompt(emu, start_bot):
    bot = start_bot(emu, topics="robot")
    set_prompt = emu.send("离线提示")
    assert '"success": true' in _text(emu.wait_reply(set_prompt, t(10)))
    bot.stop()
    emu.wait_for(lambda: emu.connections() == 0, t(10))
    offline = emu.message(emu.send("在吗"))
    assert offline["attempts"] == 0 and "no connection" in offline["not_pushed"]
    card = offline["offline_prompt"]
    assert card["cardTemplateId"] == "StandardCard"
    assert "下班了" in json.dumps(card["cardData"], ensure_ascii=False)
