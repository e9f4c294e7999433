"""Declared follow-ups (``notify:`` in skill.yaml): validated at load time, rendered with the
reply's variables (the HTTP action's ``api`` result included), skipped - never fatal - when
their recipient is empty or they cannot be rendered. Delivery through the emulator's robot
OpenAPI is tested in tests/runtime/test_notify.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from dingskill.cli.main import main as cli
from dingskill.runtime.local import respond
from dingskill.skills import ManifestError
from dingskill.skills.manifest import parse_manifest
from dingskill.skills.outbound import OutboundPolicy

from .helpdesk_server import HelpdeskServer

ROOT = Path(__file__).resolve().parents[2]
YAML = (ROOT / "skills" / "it-helpdesk" / "skill.yaml").read_text(encoding="utf-8")
REPORT = "我的电脑蓝屏了，一直重启"


@pytest.fixture
def api(monkeypatch, helpdesk_skill):
    with HelpdeskServer() as server:
        monkeypatch.setenv("HELPDESK_API_URL", server.url)
        policy = OutboundPolicy.for_skill(
            helpdesk_skill.manifest, None, ["HELPDESK_API_URL"], ["127.0.0.1"]
        )
        monkeypatch.setattr(helpdesk_skill, "outbound", policy)
        yield server


def test_ticket_follow_up_names_the_assignee_rendered_from_the_api(helpdesk_skill, api):
    api.assignee = "it-zhang"
    r = respond(helpdesk_skill, REPORT, sender_id="staff-9", sender_nick="小李")
    assert r.intent == "report_issue" and "INC-1001" in r.text and r.error is None
    assert r.followups == [
        {
            "user": "it-zhang",
            "text": f"新工单 INC-1001：小李 报修「{REPORT}」，请在 4 小时内处理。",
            "format": "text",
            "title": "",
        }
    ]


def test_no_assignee_is_skipped_with_a_log_line(helpdesk_skill, api, caplog):
    caplog.set_level(logging.INFO, logger="dingskill.skills")
    r = respond(helpdesk_skill, REPORT, sender_id="staff-9")
    assert "INC-1001" in r.text and r.error is None and r.followups == []
    assert "intents.report_issue.notify[0]: its user is empty" in caplog.text


def test_a_follow_up_that_cannot_render_never_costs_the_reply(
    helpdesk_skill, api, caplog, monkeypatch
):
    api.assignee = "it-zhang"
    resp = helpdesk_skill.manifest.intents["report_issue"]
    notify = [
        {"user": "{{ api.assignee }}", "text": "{{ api.id.no_such_field }}"},  # undefined
        {"group": "cid-it-team", "text": "**{{ api.id }}** 已分派", "format": "markdown"},
    ]
    monkeypatch.setitem(resp, "notify", notify)
    r = respond(helpdesk_skill, REPORT, sender_id="staff-9")
    assert "INC-1001" in r.text and r.error is None  # the reply as without follow-ups
    assert r.followups == [
        {"group": "cid-it-team", "text": "**INC-1001** 已分派", "format": "markdown", "title": ""}
    ]
    assert "notify[0] could not be rendered" in caplog.text and "undefined" in caplog.text


def test_api_failure_sends_no_follow_up(helpdesk_skill, api):
    api.assignee, api.fail_next = "it-zhang", 10
    r = respond(helpdesk_skill, REPORT, sender_id="staff-9")
    assert "工单系统暂时连不上" in r.text and r.followups == []  # no ticket, nothing to tell


def _problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, "it-helpdesk/skill.yaml")
    return info.value.problems


def test_notify_without_the_permission_is_refused_at_load():
    text = YAML.replace(
        "permissions: [qyapi_robot_sendmsg, http.outbound, handlers]",
        "permissions: [http.outbound, handlers]",
    )
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.strip() == "notify:")
    assert _problems(text) == [
        f"it-helpdesk/skill.yaml:{line}: intents.report_issue.notify: follow-up messages need "
        "the 'qyapi_robot_sendmsg' permission: add it to 'permissions' (the operator sees it "
        "at install), or remove 'notify'"
    ]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            '{user: "{{ api.assignee }}", group: cid-1, text: hi}',
            "intents.report_issue.notify.0: a follow-up needs exactly one recipient: 'user'",
        ),
        ("{text: hi}", "intents.report_issue.notify.0: a follow-up needs exactly one recipient"),
        ('{user: "{{ api.assignee }}"}', "intents.report_issue.notify.0: a follow-up needs 'text'"),
        (
            "{user: u1, text: hi, format: card}",
            "intents.report_issue.notify.0.format: 'card' is not one of ['text', 'markdown']",
        ),
        (
            '{user: u1, text: "{{ api.id "}',
            "intents.report_issue.notify.0.text: template line 1: unexpected end of template",
        ),
        (
            '{user: "{% if %}", text: hi}',
            "intents.report_issue.notify.0.user: template line 1:",
        ),
    ],
)
def test_notify_items_are_checked_field_by_field(item, expected):
    lines = YAML.splitlines()
    start = next(i for i, t in enumerate(lines) if t.strip() == "notify:")
    text = "\n".join([*lines[: start + 1], f"      - {item}", *lines[start + 3 :]])
    problems = _problems(text)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(f"it-helpdesk/skill.yaml:{start + 2}:") for p in problems), problems


def test_handler_responses_return_their_own_follow_ups():
    text = YAML.replace(
        "    handler: password_reset\n",
        "    handler: password_reset\n    notify: [{user: u1, text: hi}]\n",
    )
    (problem,) = _problems(text)
    assert "intents.password_reset.notify: a handler returns its own follow-ups" in problem


def test_validate_command_reports_the_missing_permission(tmp_path, capsys):
    (tmp_path / "skill.yaml").write_text(
        YAML.replace("qyapi_robot_sendmsg, ", ""), encoding="utf-8"
    )
    assert cli(["skills", "validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "intents.report_issue.notify: follow-up messages need the 'qyapi_robot_sendmsg'" in out
    assert cli(["skills", "validate", str(ROOT / "skills" / "it-helpdesk")]) == 0


def test_terminal_and_widget_show_the_follow_up_they_do_not_send(helpdesk_skill, api):
    import io

    from dingskill.notebook import ChatWidget
    from dingskill.runtime.terminal import chat

    api.assignee = "it-zhang"
    out = io.StringIO()
    chat([helpdesk_skill], [REPORT], out, sender_id="staff-9")
    assert "-> follow-up to user it-zhang (sent by the runtime): 新工单 INC-1001" in out.getvalue()
    widget = ChatWidget([helpdesk_skill])
    turn = widget.send(REPORT)
    assert turn["followups"][0]["user"] == "it-zhang"
    assert "follow-up to user it-zhang" in widget._html.value
