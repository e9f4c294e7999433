"""The IT help-desk skill against a real local HTTP API that is slow, fails and recovers."""

from __future__ import annotations

import pytest
from dingskill.runtime.local import respond
from dingskill.skills.http_action import HttpAction, HttpActionError, json_path
from dingskill.skills.outbound import OutboundPolicy

from .helpdesk_server import HelpdeskServer

GRANTED = ["HELPDESK_API_URL", "HELPDESK_API_TOKEN"]


def _grant(skill, monkeypatch):
    """What the runtime does for an installed skill: granted secrets, 127.0.0.1 allowed."""
    monkeypatch.setattr(
        skill, "outbound", OutboundPolicy.for_skill(skill.manifest, None, GRANTED, ["127.0.0.1"])
    )


@pytest.fixture
def api(monkeypatch, helpdesk_skill):
    with HelpdeskServer() as server:
        monkeypatch.setenv("HELPDESK_API_URL", server.url)
        monkeypatch.setenv("HELPDESK_API_TOKEN", "s3cret-token")
        _grant(helpdesk_skill, monkeypatch)
        yield server


def _say(skill, text, sender="staff-9"):
    return respond(skill, text, sender_id=sender)


def test_files_a_ticket_and_reads_its_status(helpdesk_skill, api):
    r = _say(helpdesk_skill, "我的电脑蓝屏了，一直重启")
    assert r.intent == "report_issue" and "INC-1001" in r.text and r.error is None
    assert (
        api.tickets[0]["reporter"] == "staff-9"
        and api.tickets[0]["summary"] == "我的电脑蓝屏了，一直重启"
    )
    assert api.requests[0]["auth"] == "Bearer s3cret-token"
    s = _say(helpdesk_skill, "我的工单处理到哪了")
    assert s.intent == "ticket_status" and "INC-1001" in s.text and "处理中" in s.text


def test_retries_through_failures(helpdesk_skill, api):
    api.fail_next = 2  # two 500s, then success (the skill allows 2 retries)
    r = _say(helpdesk_skill, "打印机坏了，打不出来")
    assert "INC-1001" in r.text and len(api.requests) == 3


def test_falls_back_when_the_api_stays_down_then_recovers(helpdesk_skill, api):
    api.fail_next = 10
    r = _say(helpdesk_skill, "显示器不亮了")
    assert "工单系统暂时连不上" in r.text and "500" in r.error and not api.tickets
    api.fail_next = 0
    assert "INC-1001" in _say(helpdesk_skill, "显示器不亮了").text


def test_slow_api_times_out_then_retry_succeeds(helpdesk_skill, api):
    api.slow_next, api.slow_seconds = 1, 3.0  # longer than the 2 s timeout
    r = _say(helpdesk_skill, "键盘失灵了")
    assert "INC-" in r.text and r.error is None


def test_unreachable_api(helpdesk_skill, monkeypatch):
    monkeypatch.setenv("HELPDESK_API_URL", "http://127.0.0.1:9")  # nothing listens
    _grant(helpdesk_skill, monkeypatch)
    r = _say(helpdesk_skill, "电脑开不了机")
    assert "工单系统暂时连不上" in r.text and "connection to 127.0.0.1:9 failed" in r.error


def test_handler_needs_trust(helpdesk_skill, tmp_path):
    r = _say(helpdesk_skill, "邮箱密码忘了，帮我重置")
    assert r.intent == "password_reset" and r.format == "markdown" and "重置密码" in r.text
    from dingskill.skills import Skill

    untrusted = Skill(
        helpdesk_skill.path, helpdesk_skill.manifest, helpdesk_skill.model, trusted=False
    )
    r = _say(untrusted, "邮箱密码忘了，帮我重置")
    assert "trusted" in r.error and "热线" in r.text


def test_http_action_unit(api):
    action = HttpAction(
        url=api.url + "/api/tickets?reporter={{ message.sender_id }}",
        retries=0,
        keep={"first": "tickets[0].id"},
    )
    policy = OutboundPolicy(hosts=("127.0.0.1",), allow_private=("127.0.0.1",))
    assert action.call_sync({"message": {"sender_id": "nobody"}}, policy) == {"first": None}
    with pytest.raises(HttpActionError, match="secret NOPE_UNSET is not granted"):
        HttpAction(url="${NOPE_UNSET}/x").call_sync({}, policy)
    assert json_path({"a": [{"b": 1}]}, "a[0].b") == 1 and json_path({}, "a.b") is None
