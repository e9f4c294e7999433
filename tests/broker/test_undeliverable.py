"""A reply no attempt can deliver is not dropped: the worker audits it and dead-letters it
at once with reason ``undeliverable`` (issue #25)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dingskill.skills import Skill
from dingskill.skills.packaging import SkillHome

from .harness import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.redis]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home_without_robot_permission(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("noperm")
    (base / "datasets").symlink_to(ROOT / "datasets")
    src = base / "skills" / "hr-assistant"
    shutil.copytree(ROOT / "skills" / "hr-assistant", src)
    y = src / "skill.yaml"
    y.write_text(y.read_text().replace("permissions: [qyapi_robot_sendmsg]", "permissions: []"))
    SkillHome(base / "home").install(Skill.load(src).export(base / "dist"))
    return base / "home"


def test_reply_without_webhook_or_permission_is_dead_lettered(stack, home_without_robot_permission):
    emu = stack.emulator
    stack.start("worker", skills={"home": str(home_without_robot_permission)})
    gw = stack.start("gateway")
    emu.wait_connections(1)
    # the platform no longer knows the session (errcode 300001), the payload promises an hour
    msg = emu.send(
        "我想看工资条",
        sender_id="late-user",
        webhook_ttl_ms=-1,
        extra={"sessionWebhookExpiredTime": 4102444800000},
    )

    def listed():  # as an admin: the dlq commands need the role
        out = stack.cli("dlq", "list", "--json", config=gw.config_path)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    letters = wait_until(listed, 60, 0.5, what="the dead letter")
    assert [(d["id"], d["reason"]) for d in letters] == [(msg, "undeliverable")]
    assert "no_permission" in letters[0]["error"]
    assert emu.messages[msg].replies == [] and emu.proactive == []
