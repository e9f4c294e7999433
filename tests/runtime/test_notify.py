"""Declared follow-ups through the real runtime: the IT help-desk skill files a ticket over
HTTP, answers the reporter through the session webhook, and tells the engineer the API
assigned through the emulator's robot OpenAPI (``/v1.0/robot/oToMessages/batchSend``), with
the text rendered from the API's answer; no assignee, no follow-up, the reply unchanged."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from dingskill.skills.packaging import SkillHome

from ..skills.helpdesk_server import HelpdeskServer
from .harness import tail, wait_until


@pytest.fixture
def helpdesk_api():
    with HelpdeskServer() as server:
        yield server


def _helpdesk_runtime(tmp_path, start_runtime, packages, helpdesk_api, **extra):
    """A runtime with the it-helpdesk skill trusted, its API's URL granted as a secret."""
    h = SkillHome(tmp_path / "home")
    h.install(
        packages["it-helpdesk"], trust=True, allow_hosts=["127.0.0.1", "helpdesk.example.com"]
    )
    return start_runtime(
        tmp_path / "home",
        env={"HELPDESK_API_URL": helpdesk_api.url},
        extra={
            "skills": {"secrets": {"com.dingskill.it-helpdesk": ["HELPDESK_API_URL"]}},
            "security": {"outbound_allow_private": ["127.0.0.1"]},
            **extra,
        },
    )


def test_http_action_follow_up_reaches_the_robot_openapi(
    tmp_path, emulator, start_runtime, packages, helpdesk_api
):
    rt = _helpdesk_runtime(tmp_path, start_runtime, packages, helpdesk_api)
    emulator.wait_connections(1)
    emulator.register(users=["it-zhang"])  # the engineer is a member of the organisation
    helpdesk_api.assignee = "it-zhang"

    msg = emulator.send("我的电脑蓝屏了，一直重启", sender_id="staff-9", sender_nick="小李")
    reply = emulator.wait_reply(msg, timeout=30)
    assert "已为您创建工单 INC-1001" in reply["text"]["content"]
    wait_until(lambda: emulator.proactive, 20, what="the follow-up on the robot OpenAPI")
    (sent,) = emulator.proactive
    assert sent["to_user"] == "it-zhang" and sent["msgKey"] == "sampleText"
    assert sent["msgParam"] == {
        "content": "新工单 INC-1001：小李 报修「我的电脑蓝屏了，一直重启」，请在 4 小时内处理。"
    }

    helpdesk_api.assignee = None  # the API assigns nobody: the follow-up is skipped
    msg = emulator.send("打印机卡纸了，打不出来", sender_id="staff-9")
    assert "INC-1002" in emulator.wait_reply(msg, timeout=30)["text"]["content"]
    wait_until(
        lambda: rt.metric("dingskill_openapi_messages_total", 'outcome="ok",purpose="notify"') == 1,
        10,
        what="one follow-up counted",
        output=lambda: "\n".join(x for x in rt.metrics().splitlines() if "openapi" in x),
    )
    assert len(emulator.proactive) == 1


def test_webhook_mode_sends_follow_ups_after_the_http_answer(
    tmp_path, emulator, start_runtime, packages, helpdesk_api
):
    """HTTP webhook mode answers in the HTTP response; the follow-ups go out after it,
    through the same robot OpenAPI (the app's AppKey is the robot code)."""
    import httpx
    from dingskill.runtime.channels.webhook import sign

    from .conftest import APP

    rt = _helpdesk_runtime(
        tmp_path,
        start_runtime,
        packages,
        helpdesk_api,
        channels={"enterprise_chat": {"mode": "webhook", "endpoint": emulator.url}},
    )
    emulator.register(users=["it-zhang"])
    helpdesk_api.assignee = "it-zhang"
    ts = str(int(time.time() * 1000))
    payload = {
        "msgId": "wh-notify-1",
        "conversationId": "cid-wh",
        "conversationType": "1",
        "senderId": "$:LWCP_v1:$staff-9",
        "senderStaffId": "staff-9",
        "senderNick": "小李",
        "msgtype": "text",
        "text": {"content": "我的电脑蓝屏了，一直重启"},
        "createAt": int(ts),
    }
    r = httpx.post(
        f"{rt.url}/api/v1/webhook",
        content=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"timestamp": ts, "sign": sign(ts, APP[1])},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert "已为您创建工单 INC-1001" in r.json()["text"]["content"]
    wait_until(
        lambda: emulator.proactive,
        20,
        what="the follow-up on the robot OpenAPI",
        output=lambda: tail(rt.log),
    )
    (sent,) = emulator.proactive
    assert sent["to_user"] == "it-zhang" and sent["app"] == APP[0]
    assert sent["msgParam"]["content"].startswith("新工单 INC-1001：小李 报修")


def test_delivery_refuses_follow_ups_of_a_skill_without_the_permission(emulator, caplog):
    """Defence in depth (a handler's follow-ups; a manifest's are refused at load): without
    qyapi_robot_sendmsg nothing reaches the robot OpenAPI; with it, a user and a group."""
    from dingskill.runtime.delivery import Delivery
    from dingskill.runtime.metrics import Metrics
    from dingskill.runtime.proactive import RobotSender
    from dingskill.runtime.replies import OpenApi
    from dingskill.skills.conversation import Reply
    from dingskill.skills.notify import normalize_all

    from .conftest import APP

    emulator.register(users=["it-zhang"], groups=["cid-it-team"])
    followups = normalize_all(
        [
            {"user": " it-zhang ", "text": "审批已通过"},
            {"group": "cid-it-team", "text": "**INC-1001** 已关闭", "format": "markdown"},
            {"user": "", "text": "没有收件人"},  # skipped, logged
        ],
        "com.example.approvals handler approve",
    )
    assert [f.get("user") or f.get("group") for f in followups] == ["it-zhang", "cid-it-team"]
    metrics = Metrics()

    async def deliver(perms: list[str]) -> None:
        api = OpenApi(emulator.url, *APP)
        try:
            delivery = Delivery(None, None, None, RobotSender(api, APP[0]), metrics)
            reply = Reply(text="好的", skill_id="com.example.approvals", followups=followups)
            await delivery.followups(reply, perms)
        finally:
            await api.close()

    asyncio.run(deliver([]))
    assert emulator.proactive == []
    assert "follow-up refused: the skill does not hold qyapi_robot_sendmsg" in caplog.text
    asyncio.run(deliver(["qyapi_robot_sendmsg"]))
    assert [(p.get("to_user") or p.get("to_group"), p["msgKey"]) for p in emulator.proactive] == [
        ("it-zhang", "sampleText"),
        ("cid-it-team", "sampleMarkdown"),
    ]
    assert emulator.proactive[1]["msgParam"]["text"] == "**INC-1001** 已关闭"
    counts = metrics.render().decode()
    assert 'dingskill_openapi_messages_total{outcome="refused",purpose="notify"} 2.0' in counts
    assert 'dingskill_openapi_messages_total{outcome="ok",purpose="notify"} 2.0' in counts


def test_repeated_misunderstanding_hands_over_through_the_runtime(
    tmp_path, emulator, start_runtime, packages
):
    """The operator's handover (runtime config): after two out-of-scope replies in a row the
    reply names the contact, and the configured group is told who needs help (the runtime's
    own follow-up through the robot OpenAPI, no skill permission involved)."""
    h = SkillHome(tmp_path / "home")
    h.install(packages["hr-assistant"])
    h.install(packages["faq-en"])
    start_runtime(
        tmp_path / "home",
        extra={
            "handover": {"after_misses": 2, "contact": "HR 服务台（分机 8000）", "group": "cid-hr"}
        },
    )
    emulator.wait_connections(1)
    emulator.register(groups=["cid-hr"])
    first = emulator.send("今天天气怎么样", sender_id="staff-7", sender_nick="小周")
    card = emulator.wait_reply(first, timeout=30)["actionCard"]  # with quick-reply buttons
    assert "我可以帮您" in card["text"] and "HR 服务台" not in card["text"] and card["btns"]
    second = emulator.send("火星上有水吗", sender_id="staff-7", sender_nick="小周")
    card = emulator.wait_reply(second, timeout=30)["actionCard"]
    assert "联系人工：HR 服务台（分机 8000）" in card["text"]
    wait_until(lambda: emulator.proactive, 20, what="the handover note to the group")
    (sent,) = emulator.proactive
    assert sent["to_group"] == "cid-hr" and "小周" in sent["msgParam"]["content"]
    assert "火星上有水吗" in sent["msgParam"]["content"]
