"""The platform as bots in the field meet it, through the official SDK: webhook error codes,
the per-app per-API QPS limit, token reuse and revocation, the rarer message shapes."""

from __future__ import annotations

import httpx
import pytest

from .conftest import t

QPS_CODE = "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"


def _reply_text(emu, msg_id: str) -> str:
    return emu.wait_reply(msg_id, timeout=t(20))["text"]["content"]


def test_unknown_or_expired_session_answers_300001(make_emulator):
    emu = make_emulator()
    r = httpx.post(f"{emu.url}/robot/sendBySession?session=never-issued", json={})
    assert r.status_code == 200 and r.json() == {"errcode": 300001, "errmsg": "session 不存在"}
    assert emu.counters["webhook_unknown_session"] == 1


def test_token_reused_within_validity_then_revoked(make_emulator, start_bot):
    emu = make_emulator()
    start_bot(emu, topics="robot")
    assert _reply_text(emu, emu.send("审批卡片")).startswith("card: ")  # the bot's own token
    first = _reply_text(emu, emu.send("令牌"))
    second = _reply_text(emu, emu.send("令牌"))
    assert first == second and first.startswith("token: ") and len(first) > 12
    assert emu.stats()["tokens"]["reused"] >= 1 and emu.stats()["tokens"]["issued"] == 1
    # a secret reset through the dev API: the bot's cached token now answers 401
    assert httpx.post(f"{emu.url}/_emulator/tokens/revoke", json={}).json()["revoked"] == 1
    reply = _reply_text(emu, emu.send("审批卡片"))
    refused = [r for r in emu.openapi_requests("/v1.0/card/instances") if r["status"] == 401]
    assert refused and refused[0]["response"]["code"] == "InvalidAuthentication", reply
    # a new request gets a new token, which works
    assert _reply_text(emu, emu.send("令牌")) != first


def test_qps_limit_per_app_and_api(make_emulator, start_bot):
    emu = make_emulator(qps_limit=5)
    start_bot(emu, topics="robot")
    # 15 streaming calls within ~a second: at least 3 over the limit whatever the second split
    assert _reply_text(emu, emu.send("快速流式15")).startswith("streamed: ")
    calls = emu.openapi_requests("/v1.0/card/streaming")
    refused = [c for c in calls if c["status"] == 403]
    assert len(calls) == 15 and len(refused) >= 3
    assert refused[0]["response"]["code"] == QPS_CODE and "requestid" in refused[0]["response"]
    # per API: the card's create call in the same second was not counted with the stream
    assert all(c["status"] == 200 for c in emu.openapi_requests("/v1.0/card/instances"))
    assert emu.counters["qps_limited"] == len(refused)


@pytest.mark.parametrize("limit", [0])
def test_qps_limit_switched_off(make_emulator, start_bot, limit):
    emu = make_emulator(qps_limit=limit)
    start_bot(emu, topics="robot")
    _reply_text(emu, emu.send("快速流式25"))
    assert all(c["status"] == 200 for c in emu.openapi_requests("/v1.0/card/streaming"))


def test_unknown_msg_type_and_group_rich_text_at_name(make_emulator, start_bot):
    emu = make_emulator()
    start_bot(emu, topics="robot")
    msg = emu.send(msgtype="unknownMsgType")
    assert emu.message(msg)["payload"]["content"] == {"unknownMsgType": "[暂不支持的消息类型]"}
    assert _reply_text(emu, msg) == "unsupported: unknownMsgType [暂不支持的消息类型]"
    msg = emu.send(
        msgtype="richText",
        conversation_type="group",
        rich_text=[{"text": "看看这张图"}, {"type": "picture", "downloadCode": "dc-rich-1"}],
    )
    parts = emu.message(msg)["payload"]["content"]["richText"]
    assert parts[0] == {"text": "@办公助手 看看这张图"}  # the @name stays in the first part
    assert _reply_text(emu, msg).startswith("rich: @办公助手 看看这张图 images=[")
