"""The emulator against the real dingtalk-stream SDK, in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from dingskill.emulator import Emulator, EmulatorClient, RobotDelivery

BOT = Path(__file__).with_name("sdk_bot.py")
KEY, SECRET = "dingtestkey", "test-secret"


def _bot(url: str, mode: str = "echo", secret: str = SECRET) -> subprocess.Popen:
    env = {**os.environ, "DINGTALK_OPENAPI_ENDPOINT": url}
    return subprocess.Popen(
        [sys.executable, str(BOT), KEY, secret, mode],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def emu():
    e = Emulator({KEY: SECRET}, ack_timeout=1.0)
    e.start()
    yield e
    e.stop()


@pytest.fixture
def bots():
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def test_single_chat_delivered_acked_and_reply_recorded(emu, bots):
    bots.append(_bot(emu.url))
    emu.wait_connections(1)
    msg_id = emu.send("我想请三天年假", sender_id="staff-001", sender_nick="小王")
    body = emu.wait_reply(msg_id, timeout=10)
    assert body["msgtype"] == "text"
    assert body["text"]["content"] == "echo: 我想请三天年假 | 1 | staff-001"
    emu.wait_for(lambda: emu.message(msg_id)["acked"])
    view = emu.message(msg_id)
    assert view["ack_code"] == 200 and view["attempts"] == 1


def test_group_message_shape(emu, bots):
    bots.append(_bot(emu.url))
    emu.wait_connections(1)
    msg_id = emu.send("订个会议室", conversation_type="group", sender_id="staff-002")
    assert emu.wait_reply(msg_id)["text"]["content"] == "echo: 订个会议室 | 2 | staff-002"
    payload = emu.messages[msg_id].payload
    assert payload["isInAtList"] is True and payload["atUsers"] and payload["conversationTitle"]
    assert payload["text"]["content"] == " 订个会议室"  # "@办公助手" removed, the blank kept


def test_markdown_reply_and_http_api(emu, bots):
    bots.append(_bot(emu.url, "markdown"))
    emu.wait_connections(1)
    with EmulatorClient(emu.url) as client:
        msg_id = client.send("hello")
        body = client.wait_reply(msg_id, timeout=10)
        assert body["msgtype"] == "markdown" and body["markdown"]["text"] == "**hello**"
        assert client.stats()["answered"] == 1
        with pytest.raises(ValueError, match="unknown field"):
            client.send("x", bogus=1)


def test_wrong_secret_is_refused(emu):
    r = httpx.post(
        f"{emu.url}/v1.0/gateway/connections/open",
        json={"clientId": KEY, "clientSecret": "wrong", "subscriptions": []},
    )
    assert r.status_code == 401 and "clientSecret" in r.json()["message"]
    missing = httpx.post(
        f"{emu.url}/v1.0/gateway/connections/open", json={"clientId": KEY, "clientSecret": SECRET}
    )
    assert missing.status_code == 400 and "subscriptions" in missing.json()["message"]
    ok = httpx.post(
        f"{emu.url}/v1.0/gateway/connections/open",
        json={"clientId": KEY, "clientSecret": SECRET, "subscriptions": []},
    )
    assert (
        ok.status_code == 200 and ok.json()["endpoint"].startswith("ws://") and ok.json()["ticket"]
    )


def test_unacked_message_is_redelivered_to_another_connection(emu, bots):
    emu.robot_delivery = RobotDelivery.UNTIL_ACK  # the undocumented behaviour, switched on
    bots.append(_bot(emu.url, "noack"))
    emu.wait_connections(1)
    msg_id = emu.send("没人处理的消息")
    emu.wait_for(lambda: emu.messages[msg_id].attempts >= 2, timeout=5)  # redelivered after 1 s
    bots.append(_bot(emu.url))
    emu.wait_connections(2)
    body = emu.wait_reply(msg_id, timeout=15)  # round robin reaches the answering bot
    assert body["text"]["content"].startswith("echo: 没人处理的消息")
    assert emu.stats()["redelivered"] >= 1


def test_two_connections_share_the_load(emu, bots):
    bots.extend([_bot(emu.url), _bot(emu.url)])
    emu.wait_connections(2)
    ids = [emu.send(f"消息 {i}", sender_id=f"u{i}") for i in range(20)]
    for i in ids:
        emu.wait_reply(i)
    conns = {emu.messages[i].conn_id for i in ids}
    assert len(conns) == 2
    assert emu.stats()["duplicated"] == 0


def test_ping_is_answered_and_webhook_faults(emu, bots):
    bots.append(_bot(emu.url))
    emu.wait_connections(1)
    assert emu.system("ping") == 1
    emu.wait_for(lambda: emu.counters["pings"] >= 1)
    emu.set_faults(webhook_500=1)
    msg_id = emu.send("hello")
    session_url = emu.messages[msg_id].payload["sessionWebhook"]
    emu.wait_for(lambda: emu.faults["webhook_500"] == 0)  # the SDK's reply met the fault
    r = httpx.post(session_url, json={"msgtype": "text", "text": {"content": "retry"}})
    assert r.json()["errcode"] == 0 and emu.replies(msg_id)[0]["text"]["content"] == "retry"
    bad = httpx.post(f"{emu.url}/robot/sendBySession?session=nope", json={"msgtype": "text"})
    assert bad.json()["errcode"] != 0


def test_expired_session_webhook(emu):
    msg_id = emu.send("hi", webhook_ttl_ms=-1)  # no connection: not pushed, webhook expired
    url = emu.messages[msg_id].payload["sessionWebhook"]
    r = httpx.post(url, json={"msgtype": "text", "text": {"content": "late"}})
    assert r.status_code == 200 and r.json() == {"errcode": 300001, "errmsg": "session 不存在"}
    emu.expired_webhook_errcode = 300002  # the other reading, switchable
    try:
        r = httpx.post(url, json={"msgtype": "text", "text": {"content": "late"}})
        assert r.json()["errcode"] == 300002
    finally:
        emu.expired_webhook_errcode = 300001


@pytest.mark.slow
def test_dropped_connection_sdk_reconnects_nothing_lost(emu, bots):
    emu.robot_delivery = RobotDelivery.UNTIL_ACK  # messages wait for the reconnection
    bots.append(_bot(emu.url))
    emu.wait_connections(1)
    first = emu.send("before the drop")
    emu.wait_reply(first)
    assert (
        emu.drop_connections(code=1011) == 1
    )  # abnormal close: the SDK waits ~10 s and reconnects
    queued = [emu.send(f"during the outage {i}") for i in range(3)]
    emu.wait_connections(1, timeout=30)
    for q in queued:
        assert emu.wait_reply(q, timeout=20)["text"]["content"].startswith(
            "echo: during the outage"
        )
    assert emu.stats()["duplicated"] == 0 and emu.counters["opened"] == 2


def test_access_token_and_card_streaming(emu):
    tok = httpx.post(
        f"{emu.url}/v1.0/oauth2/accessToken", json={"appKey": KEY, "appSecret": SECRET}
    ).json()
    assert tok["expireIn"] == 7200
    h = {"x-acs-dingtalk-access-token": tok["accessToken"]}
    assert (
        httpx.post(f"{emu.url}/v1.0/card/instances", json={"outTrackId": "t1"}).status_code == 401
    )
    emu.register(users=["staff-5"])
    create = {
        "outTrackId": "t1",
        "cardTemplateId": "382e4302-551d-4880-bf29-a30acfab2e71.schema",
        "cardData": {"cardParamMap": {"content": ""}},
        "callbackType": "STREAM",
        "imRobotOpenSpaceModel": {"supportForward": True},
    }
    assert httpx.post(f"{emu.url}/v1.0/card/instances", json=create, headers=h).status_code == 200
    deliver = {
        "outTrackId": "t1",
        "openSpaceId": "dtv1.card//IM_ROBOT.staff-5",
        "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"},
        "userIdType": 1,
    }
    r = httpx.post(f"{emu.url}/v1.0/card/instances/deliver", json=deliver, headers=h)
    assert r.status_code == 200 and r.json()["result"][0]["success"] is True
    for i, part in enumerate(["您好", "您好，已为您"]):
        r = httpx.put(
            f"{emu.url}/v1.0/card/streaming",
            headers=h,
            json={
                "outTrackId": "t1",
                "guid": f"g{i}",
                "key": "content",
                "content": part,
                "isFull": True,
                "isFinalize": i == 1,
                "isError": False,
            },
        )
        assert r.status_code == 200, r.text
    card = emu.cards["t1"]
    assert card["delivered"] and [s["content"] for s in card["stream"]] == ["您好", "您好，已为您"]
    assert card["stream"][-1]["isFinalize"] is True
    assert card["cardData"]["cardParamMap"]["content"] == "您好，已为您"
