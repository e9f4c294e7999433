"""`dingskill run` end to end: the real SDK against the emulator, in real processes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from dingskill.security.audit_chain import AuditChain, verify_chain
from dingskill.skills.packaging import SkillHome

from .harness import RuntimeProcess, wait_until

APP = ("dingtestapp", "test-app-secret")
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _text(body: dict) -> str:
    return (
        body.get("text", {}).get("content")
        or body.get("markdown", {}).get("text")
        or json.dumps(body)
    )


def _audit(rt_dir, want: int, timeout=10):
    path = rt_dir / "audit" / "messages.jsonl"
    return wait_until(
        lambda: path.exists() and len(recs := list(AuditChain(path).records())) >= want and recs,
        timeout,
        what=f"{want} audit records",
    )


def test_conversation_multi_turn_group_and_metrics(home, emulator, start_runtime, packages):
    SkillHome(home).install(packages["faq-en"])
    rt = start_runtime(home)
    emulator.wait_connections(1)
    turns = ["我想请假", "事假", "后天", "半天"]
    replies = [
        _text(emulator.wait_reply(emulator.send(t, sender_id="staff-7", sender_nick="小李")))
        for t in turns
    ]
    assert "病假、事假" in replies[0] and "哪天" in replies[1] and "几天" in replies[2]
    assert replies[3].startswith("小李，您的事假申请") and "0.5 天" in replies[3]
    g = emulator.send("工资条", conversation_type="group", sender_id="staff-8")
    body = emulator.wait_reply(g)
    assert body["msgtype"] == "markdown" and body["at"]["atUserIds"] == ["staff-8"]
    en = _text(emulator.wait_reply(emulator.send("what's the wifi password?", sender_id="staff-9")))
    assert "Corp-Staff" in en
    emulator.wait_for(lambda: emulator.stats()["unacked"] == 0)
    m = rt.metrics()
    for name in (
        "dingskill_message_latency_seconds_bucket",
        "dingskill_messages_total",
        "dingskill_skill_calls_total",
        "dingskill_inflight_messages",
        "dingskill_skills_loaded 2.0",
        "process_resident_memory_bytes",
    ):
        assert name in m
    assert rt.metric("dingskill_messages_total", 'channel="stream",outcome="ok"') == 6
    ready = httpx.get(f"{rt.url}/readyz").json()
    assert ready["ready"] and ready["checks"]["channel"]
    records = _audit(rt.config_path.parent, 6)
    msg = [r for r in records if r.get("operation") == "message"]
    assert {r["intent"] for r in msg} >= {"ask_leave", "payslip", "wifi_password_faq"}
    assert all(isinstance(r["ts_ms"], int) and r["actor"] for r in msg)
    assert verify_chain(rt.config_path.parent / "audit" / "messages.jsonl") == []


def test_redelivered_message_is_not_answered_twice(home, emulator, start_runtime):
    start_runtime(home)
    emulator.wait_connections(1)
    first = emulator.send("我想看工资条", msg_id="msg-fixed-1")
    emulator.wait_reply(first)
    emulator.send("我想看工资条", msg_id="msg-fixed-1")  # the platform pushes it again
    emulator.wait_for(lambda: emulator.messages["msg-fixed-1"].acked)
    assert emulator.counters["replies"] == 1 and emulator.messages["msg-fixed-1"].replies == []


def test_reply_webhook_500_is_retried_and_hang_is_audited_failed(home, emulator, start_runtime):
    rt = start_runtime(
        home,
        extra={"limits": {"reply_timeout_s": 0.5, "reply_retries": 2, "reply_backoff_s": 0.05}},
    )
    emulator.wait_connections(1)
    emulator.set_faults(webhook_500=2)
    assert "工资条" in _text(emulator.wait_reply(emulator.send("工资条")))
    assert rt.metric("dingskill_reply_retries_total") == 2
    emulator.set_faults(webhook_hang=3, hang_seconds=2.0)
    lost = emulator.send("我想看工资条")
    wait_until(
        lambda: rt.metric("dingskill_reply_failures_total") == 1, 15, what="reply failure counted"
    )
    records = _audit(rt.config_path.parent, 2)
    failed = [r for r in records if r.get("msg_id") == lost]
    assert failed and failed[0]["result"] == "reply_failed" and "timed out" in failed[0]["error"]


def test_api_failure_falls_back_and_counts_skill_failure(
    tmp_path, emulator, start_runtime, packages
):
    h = SkillHome(tmp_path / "h2")
    h.install(
        packages["it-helpdesk"], trust=True, allow_hosts=["127.0.0.1", "helpdesk.example.com"]
    )
    rt = start_runtime(
        tmp_path / "h2",
        env={"HELPDESK_API_URL": "http://127.0.0.1:9"},
        extra={
            "skills": {"secrets": {"com.dingskill.it-helpdesk": ["HELPDESK_API_URL"]}},
            "security": {"outbound_allow_private": ["127.0.0.1"]},
        },
    )
    emulator.wait_connections(1)
    text = _text(emulator.wait_reply(emulator.send("电脑蓝屏了一直重启")))
    assert "工单系统暂时连不上" in text
    assert rt.metric("dingskill_skill_failures_total", 'skill="com.dingskill.it-helpdesk"') == 1


def test_flood_gets_polite_replies(home, emulator, start_runtime):
    rt = start_runtime(home, extra={"limits": {"user_per_minute": 4}})
    emulator.wait_connections(1)
    ids = [emulator.send("工资条", sender_id="flooder") for _ in range(8)]
    texts = [_text(emulator.wait_reply(i)) for i in ids]
    assert sum("有点快" in t for t in texts) >= 5 and all(texts)
    assert rt.metric("dingskill_rate_limited_total", 'scope="user"') >= 5


def test_bad_input_gets_answers_and_nothing_crashes(home, emulator, start_runtime):
    start_runtime(home)
    emulator.wait_connections(1)
    big = emulator.send("a" * 1_000_000)
    assert "太长" in _text(emulator.wait_reply(big, timeout=20)) or "too long" in _text(
        emulator.messages[big].replies[0]["body"]
    )
    empty = emulator.send("   ")
    assert _text(emulator.wait_reply(empty))
    pic = emulator.send("[图片]", msgtype="picture")
    assert "图片" in _text(emulator.wait_reply(pic))  # no skill takes pictures: never silent
    broken = emulator.send(
        "x",
        raw='{"specVersion":"1.0","type":"CALLBACK","headers":{"messageId":"{frame_id}",'
        '"topic":"/v1.0/im/bot/messages/get"},"data":"{not json"}',
    )
    assert broken
    ok = emulator.send("工资条")
    assert "工资条" in _text(emulator.wait_reply(ok))


def test_install_and_rollback_picked_up_without_restart(home, emulator, start_runtime, packages):
    rt = start_runtime(home)
    emulator.wait_connections(1)
    SkillHome(home).install(packages["faq-en"])
    wait_until(lambda: rt.metric("dingskill_skills_loaded") == 2, 10, what="reload")
    assert "8:30" in _text(emulator.wait_reply(emulator.send("what are the office hours?")))
    SkillHome(home).remove("com.dingskill.faq-en")
    wait_until(lambda: rt.metric("dingskill_skills_loaded") == 1, 10, what="reload after remove")


def test_graceful_shutdown_finishes_in_flight(home, emulator, start_runtime):
    rt = start_runtime(home)
    emulator.wait_connections(1)
    ids = [emulator.send(f"工资条 {i}", sender_id=f"u{i}") for i in range(30)]
    assert rt.stop() == 0
    answered = [i for i in ids if emulator.messages[i].replies]
    unacked = [i for i in ids if not emulator.messages[i].acked]
    assert set(answered) | set(unacked) == set(
        ids
    )  # every message answered, or left for redelivery
    assert all(len(emulator.messages[i].replies) <= 1 for i in ids)


def test_webhook_mode_checks_signatures(tmp_path, home, emulator, runtimes):
    rt = RuntimeProcess(
        tmp_path / "wh",
        home,
        emulator.url,
        APP,
        extra={"channels": {"enterprise_chat": {"mode": "webhook"}}},
    ).start()
    runtimes.append(rt)
    payload = {
        "msgId": "w1",
        "conversationId": "cid1",
        "senderId": "s1",
        "senderStaffId": "staff-1",
        "conversationType": "1",
        "text": {"content": "我想看工资条"},
        "msgtype": "text",
    }
    ts = str(int(time.time() * 1000))
    good = base64.b64encode(
        hmac.new(APP[1].encode(), f"{ts}\n{APP[1]}".encode(), hashlib.sha256).digest()
    ).decode()
    url = f"{rt.url}/api/v1/webhook"
    r = httpx.post(url, json=payload, headers={"timestamp": ts, "sign": good})
    assert r.status_code == 200 and r.json()["msgtype"] == "markdown"
    assert (
        httpx.post(url, json=payload, headers={"timestamp": ts, "sign": "forged"}).status_code
        == 401
    )
    stale = str(int(time.time() * 1000) - 2 * 3600 * 1000)
    stale_sign = base64.b64encode(
        hmac.new(APP[1].encode(), f"{stale}\n{APP[1]}".encode(), hashlib.sha256).digest()
    ).decode()
    r = httpx.post(url, json=payload, headers={"timestamp": stale, "sign": stale_sign})
    assert r.status_code == 401 and "stale" in r.json()["errmsg"]
    r = httpx.post(url, content=b"{}", headers={"timestamp": ts, "sign": good})
    assert r.status_code == 401 and "already used with another body" in r.json()["errmsg"]
    ts2 = str(int(time.time() * 1000) + 1)
    good2 = base64.b64encode(
        hmac.new(APP[1].encode(), f"{ts2}\n{APP[1]}".encode(), hashlib.sha256).digest()
    ).decode()
    r = httpx.post(url, content=b"{}", headers={"timestamp": ts2, "sign": good2})
    assert r.status_code == 400


@pytest.mark.redis
def test_readiness_follows_redis(tmp_path, home, emulator, start_runtime, redis_server):
    rt = start_runtime(home, storage={"type": "redis", "connection_string": redis_server.url})
    emulator.wait_connections(1)
    wait_until(lambda: httpx.get(f"{rt.url}/readyz").status_code == 200, 10, what="ready")
    redis_server.stop()
    wait_until(lambda: httpx.get(f"{rt.url}/readyz").status_code == 503, 10, what="not ready")
    assert httpx.get(f"{rt.url}/readyz").json()["checks"]["storage"] is False
    redis_server.proc = None
    redis_server.start()
    wait_until(lambda: httpx.get(f"{rt.url}/readyz").status_code == 200, 15, what="ready again")
    assert "工资条" in _text(emulator.wait_reply(emulator.send("工资条"), timeout=15))


@pytest.mark.slow
@pytest.mark.emulator_resend
def test_websocket_dropped_mid_load_nothing_lost_nothing_twice(home, emulator, start_runtime):
    start_runtime(home, extra={"limits": {"user_per_minute": 0, "conversation_per_minute": 0}})
    emulator.wait_connections(1)
    ids = [emulator.send(f"工资条 {i}", sender_id=f"u{i % 20}") for i in range(150)]
    wait_until(
        lambda: sum(1 for i in ids if emulator.messages[i].replies) >= 20, 20, what="load under way"
    )
    assert emulator.drop_connections(code=1011) == 1  # abnormal close: the SDK reconnects by itself
    ids += [emulator.send(f"断线期间 {i}", sender_id=f"u{i}") for i in range(30)]
    emulator.wait_connections(1, timeout=40)
    wait_until(
        lambda: all(emulator.messages[i].replies for i in ids), 60, what="every message answered"
    )
    assert all(len(emulator.messages[i].replies) == 1 for i in ids)
    assert emulator.counters["opened"] == 2


@pytest.mark.emulator_lenient_cards
def test_ai_card_streaming_for_skills_holding_the_permission(tmp_path, emulator, start_runtime):
    import shutil

    from dingskill.skills import Skill

    src = tmp_path / "src"
    shutil.copytree(ROOT / "skills" / "faq-en", src / "skills" / "faq-en")
    (src / "datasets").symlink_to(ROOT / "datasets")
    manifest = src / "skills" / "faq-en" / "skill.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "permissions: [qyapi_robot_sendmsg]",
            "permissions: [qyapi_robot_sendmsg, Card.Streaming.Write]",
        )
    )
    SkillHome(tmp_path / "h").install(
        Skill.load(src / "skills" / "faq-en").export(tmp_path / "dist")
    )
    start_runtime(tmp_path / "h", extra={"cards": {"ai_template_id": "tpl-ai.schema"}})
    emulator.wait_connections(1)
    msg = emulator.send("what are the office hours?")
    wait_until(
        lambda: any(
            c["stream"] and c["stream"][-1]["isFinalize"] and c["updates"]
            for c in emulator.cards.values()
        ),
        15,
        what="a finished AI card",
    )
    card = next(iter(emulator.cards.values()))
    assert card["delivered"] and "8:30" in card["stream"][-1]["content"]
    created = card["created"]  # as the SDK's AICardReplier builds it
    assert created["cardTemplateId"] == "tpl-ai.schema" and created["callbackType"] == "STREAM"
    assert created["cardData"]["cardParamMap"] == {"content": "", "flowStatus": "1"}
    assert created["imGroupOpenSpaceModel"] == created["imRobotOpenSpaceModel"]
    assert card["updates"][-1]["cardData"]["cardParamMap"]["flowStatus"] == "3"
    assert [len(s["content"]) for s in card["stream"]] == sorted(
        len(s["content"]) for s in card["stream"]
    )
    assert (
        len(card["stream"]) >= 2 and emulator.messages[msg].replies == []
    )  # streamed, not a webhook text
