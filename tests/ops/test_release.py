"""Visibility and staged release, through a real runtime: two versions of one skill installed
side by side; developers only, a stable share of users, everyone; the atomic blue-green switch
and the instant switch back; every change audited; CLI and admin API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import httpx
import pytest
from dingskill.cli.main import main
from dingskill.emulator import Emulator
from dingskill.security.audit_chain import AuditChain
from dingskill.security.rbac import AccessControl
from dingskill.skills import Skill
from dingskill.skills.packaging import SkillHome
from dingskill.skills.release import (
    Audience,
    ReleaseError,
    ReleaseManager,
    Visibility,
    bucket,
)
from dingskill.skills.starters import new_skill

from tests.runtime.harness import RuntimeProcess

APP = ("dingtestapp", "test-app-secret")
SID = "com.example.desk"
V1, V2 = "We work Monday to Friday", "Version two: we work 8-17"


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    work = tmp_path_factory.mktemp("release")
    src = new_skill("desk", "faq", "en", work / "src")
    one = Skill.load(src).export(work / "dist")
    text = (src / "skill.yaml").read_text()
    text = text.replace("version: 0.1.0", "version: 0.2.0").replace(
        "We work Monday to Friday, 9:00-18:00, with lunch from 12:00 to 13:30.", V2
    )
    (src / "skill.yaml").write_text(text)
    two = Skill.load(src).export(work / "dist")
    return one, two


def test_visibility_rules_and_stable_buckets():
    share = [bucket(SID, f"user-{i}") < 30 for i in range(2000)]
    assert 0.26 < sum(share) / len(share) < 0.34
    assert [bucket(SID, "u-1")] * 3 == [bucket(SID, "u-1") for _ in range(3)]
    dev = Visibility(Audience.DEVELOPERS, staff=("dev-1",))
    assert dev.admits(SID, "dev-1") and not dev.admits(SID, "user-1")
    grp = Visibility(Audience.GROUPS, groups=("cid-team",))
    assert grp.admits(SID, "anyone", "cid-team") and not grp.admits(SID, "anyone", "cid-other")
    with pytest.raises(ReleaseError, match="at least one staff id"):
        Visibility(Audience.DEVELOPERS)
    with pytest.raises(ReleaseError, match="not in \\(0, 100\\]"):
        Visibility(Audience.PERCENT, percent=150)


def _ask(url: str, sender: str, n: int, conversation: str = "") -> str:
    ts = str(int(time.time() * 1000))
    sign = base64.b64encode(
        hmac.new(APP[1].encode(), f"{ts}\n{APP[1]}".encode(), hashlib.sha256).digest()
    ).decode()
    payload = {
        "msgId": f"m-{sender}-{n}-{time.monotonic_ns()}",
        "conversationId": conversation or f"cid-{sender}",
        "senderId": sender,
        "senderStaffId": sender,
        "conversationType": "1",
        "text": {"content": "what time do we start"},
        "msgtype": "text",
    }
    r = httpx.post(url, json=payload, headers={"timestamp": ts, "sign": sign}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["text"]["content"]


def test_staged_release_through_cli_admin_api_and_runtime(tmp_path, packages, capsys):
    one, two = packages
    home = tmp_path / "home"
    assert main(["plugins", "--home", str(home), "install", "--source", str(one)]) == 0
    assert main(["plugins", "--home", str(home), "install", "--source", str(two), "--stage"]) == 0
    assert SkillHome(home).installed()[0].version == "0.1.0"  # side by side, 0.1.0 still live
    assert main(["release", "--home", str(home), "set", SID, "0.2.0", "--developers", "dev-1"]) == 0
    assert "staged 0.2.0: developers (dev-1)" in capsys.readouterr().out

    emu = Emulator({APP[0]: APP[1]})
    emu.start()
    acl = AccessControl(home / "access.json")
    operator, viewer = acl.create_token("ops", "operator"), acl.create_token("v", "viewer")
    rt = RuntimeProcess(
        tmp_path / "rt",
        home,
        emu.url,
        APP,
        extra={"channels": {"enterprise_chat": {"mode": "webhook"}}},
    )
    try:
        rt.start()
        hook = f"{rt.url}/api/v1/webhook"
        assert V2 in _ask(hook, "dev-1", 1)
        assert V1 in _ask(hook, "user-1", 1)

        api = f"{rt.url}/admin/skills/{SID}"
        auth = {"Authorization": f"Bearer {operator}"}
        body = {"version": "0.2.0", "audience": "percent", "percent": 40}
        r = httpx.post(f"{api}/release", json=body, headers={"Authorization": f"Bearer {viewer}"})
        assert r.status_code == 403 and r.json()["permission"] == "skills.release"
        r = httpx.post(f"{api}/release", json=body, headers=auth, timeout=30)
        assert r.status_code == 200 and r.json()["rules"]["0.2.0"]["percent"] == 40
        users = [f"user-{i}" for i in range(12)]
        expect = {u: (V2 if bucket(SID, u) < 40 else V1) for u in users}
        assert {V1, V2} == set(expect.values())
        for round_ in (1, 2):  # the same user stays on the same side
            got = {u: (V2 if V2 in _ask(hook, u, round_) else V1) for u in users}
            assert got == expect

        r = httpx.post(f"{api}/switch", json={"version": "0.2.0"}, headers=auth, timeout=30)
        assert r.status_code == 200 and r.json()["previous"] == "0.1.0"
        assert all(V2 in _ask(hook, u, 3) for u in users[:4])
        r = httpx.post(f"{api}/switch-back", headers=auth, timeout=30)
        assert r.status_code == 200 and r.json()["previous"] == "0.2.0"
        assert all(V1 in _ask(hook, u, 4) for u in users[:4])
        assert httpx.get(api + "/release", headers=auth).json()["previous"] == "0.2.0"
    finally:
        rt.stop("kill")
        emu.stop()
    assert SkillHome(home).installed()[0].version == "0.1.0"
    cli = [r["operation"] for r in _admin_records(home / "audit" / "admin.jsonl")]
    assert cli == ["skills.visibility"]
    api_ops = [
        (r["operation"], r["actor"].startswith("token:"), r.get("version"))
        for r in _admin_records(tmp_path / "rt" / "audit" / "admin.jsonl")
        if r["operation"] in ("skills.visibility", "skills.switch", "skills.switch_back")
    ]
    assert api_ops == [
        ("skills.visibility", True, "0.2.0"),
        ("skills.switch", True, "0.2.0"),
        ("skills.switch_back", True, "0.1.0"),
    ]


def _admin_records(path: Path) -> list[dict]:
    return list(AuditChain(path).records())


def test_a_skill_in_development_is_hidden_from_everyone_else(tmp_path, packages):
    one, two = packages
    home = SkillHome(tmp_path / "home")
    home.install(one)
    manager = ReleaseManager(home)
    manager.set_visibility(SID, "0.1.0", Visibility(Audience.GROUPS, groups=("cid-dev",)))
    plan = manager.plan(SID)
    assert plan.pick("anyone", "cid-dev") == "0.1.0" and plan.pick("anyone", "cid-x") is None
    with pytest.raises(ReleaseError, match="0.3.0 is not installed"):
        manager.switch(SID, "0.3.0")
    with pytest.raises(ReleaseError, match="no earlier switch"):
        manager.switch_back(SID)
    assert [e["action"] for e in home._history(SID)] == ["install", "visibility"]


def test_audience_rules_survive_switch_and_back(tmp_path, packages):
    """A developers-only stable version switched away and back is developers-only again;
    a canary that is switched back out is seen by nobody (never its canary audience)."""
    one, two = packages
    home = SkillHome(tmp_path / "home")
    home.install(one)
    home.install(two, activate=False)
    manager = ReleaseManager(home)
    manager.set_visibility(SID, "0.1.0", Visibility(Audience.DEVELOPERS, staff=("dev-1",)))
    manager.set_visibility(SID, "0.2.0", Visibility(Audience.PERCENT, percent=50))
    manager.switch(SID, "0.2.0")
    plan = manager.plan(SID)
    assert plan.pick("dev-1") == plan.pick("anyone") == "0.2.0"  # everyone's now
    manager.switch_back(SID)
    plan = manager.plan(SID)
    assert plan.stable == "0.1.0"
    assert plan.pick("dev-1") == "0.1.0" and plan.pick("anyone") is None
    assert plan.rules["0.1.0"].staff == ("dev-1",) and "0.2.0" not in plan.rules
    manager.switch(SID, "0.2.0")  # and forward again, then back once more
    manager.switch_back(SID)
    assert manager.plan(SID).pick("anyone") is None
