"""The daily report from a real runtime's audit: messages through the webhook channel, an
actor's burst (baseline alert), then ``dingskill report daily``: Markdown + HTML with plots,
the key figures, and the review file of unrecognised / low-confidence utterances that the
dataset loader reads; the digest posted through the robot OpenAPI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from dingskill.cli.main import main
from dingskill.datasets import load
from dingskill.emulator import Emulator
from dingskill.security.audit_chain import AuditChain
from dingskill.skills import Skill
from dingskill.skills.packaging import SkillHome
from dingskill.skills.starters import new_skill

from tests.runtime.harness import RuntimeProcess, wait_until

APP = ("dingtestapp", "test-app-secret")


def _send(url: str, text: str, sender: str, n: int) -> dict:
    ts = str(int(time.time() * 1000))
    sign = base64.b64encode(
        hmac.new(APP[1].encode(), f"{ts}\n{APP[1]}".encode(), hashlib.sha256).digest()
    ).decode()
    payload = {
        "msgId": f"r-{sender}-{n}",
        "conversationId": f"cid-{sender}",
        "senderId": sender,
        "senderStaffId": sender,
        "conversationType": "1",
        "text": {"content": text},
        "msgtype": "text",
    }
    r = httpx.post(url, json=payload, headers={"timestamp": ts, "sign": sign}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_daily_report_from_a_runtime(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DINGSKILL_APP_KEY", APP[0])
    monkeypatch.setenv("DINGSKILL_APP_SECRET", APP[1])
    src = new_skill("desk", "faq", "zh", tmp_path / "src")
    home = tmp_path / "home"
    SkillHome(home).install(Skill.load(src).export(tmp_path / "dist"))
    emu = Emulator({APP[0]: APP[1]})
    emu.start()
    emu.register(APP[0], groups=["cid-operators"])  # the operators' group holds the robot
    rt = RuntimeProcess(
        tmp_path / "rt",
        home,
        emu.url,
        APP,
        extra={
            "channels": {"enterprise_chat": {"mode": "webhook"}},
            "baseline": {"min_messages": 8},
            "report": {
                "output_dir": str(tmp_path / "reports"),
                "low_confidence": 0.999,
                "open_conversation_id": "cid-operators",
                "openapi_endpoint": emu.url,
            },
        },
    )
    try:
        rt.start()
        hook = f"{rt.url}/api/v1/webhook"
        asks = ["几点上班", "公司地址是什么", "怎么报销", "财务找谁", "帮我订一张去上海的机票"]
        for i, text in enumerate(asks * 2):
            _send(hook, text, f"user-{i % 3}", i)
        for i in range(12):  # one sender floods: a departure from the message baseline
            _send(hook, "几点上班", "flooder", 100 + i)
        review = AuditChain(tmp_path / "rt" / "audit" / "review.jsonl")
        audit = AuditChain(tmp_path / "rt" / "audit" / "messages.jsonl")
        wait_until(lambda: len(list(review.records())) >= 2, 30, what="review records")
        wait_until(
            lambda: sum(r["operation"] == "message" for r in audit.records()) >= 22,
            30,
            what="audit records",
        )
        capsys.readouterr()
        argv = ["report", "daily", "--config", str(rt.config_path), "--post", "--json"]
        assert main([*argv, "--metrics-url", f"{rt.url}/metrics"]) == 0
        out = json.loads(capsys.readouterr().out)
        sent = [p for p in emu.proactive if p.get("to_group") == "cid-operators"]
    finally:
        rt.stop("term")
        emu.stop()
    st = out["stats"]
    assert st["messages"] == 22 and st["p50_ms"] is not None and st["p99_ms"] >= st["p50_ms"]
    assert 0.05 < st["oos_rate"] < 0.2  # the flight booking, twice
    assert st["skills"][0]["skill_id"] == "com.example.desk"
    assert st["resources"]["memory_rss_mb"] > 10 and st["resources"]["skills_loaded"] == 1
    assert dict(map(tuple, st["top_intents"]))["office_hours"] >= 12
    assert any(
        a["operation"] == "baseline.alert" and a["object"] == "flooder" for a in st["alerts"]
    )
    md = open(out["markdown"], encoding="utf-8").read()
    assert "| messages | 22 |" in md and "![latency](latency.png)" in md
    html = open(out["html"], encoding="utf-8").read()
    assert html.count("data:image/png;base64,") == 4 and "baseline.alert" in html
    # the review file is a dataset the loaders (and notebooks) read
    ds = load(out["review"])
    texts = list(ds.texts)
    assert "帮我订一张去上海的机票" in texts and len(texts) == len(set(texts))
    assert dict(zip(ds.texts, ds.intents, strict=True))["帮我订一张去上海的机票"] == "oos"
    # posted through the emulator's robot OpenAPI: a markdown digest to the operators' group
    (msg,) = sent
    assert msg["msgKey"] == "sampleMarkdown" and msg["processQueryKey"] == out["posted"]
    assert "P50 / P99" in msg["msgParam"]["text"] and "daily report" in msg["msgParam"]["title"]


def test_runtime_writes_the_report_itself_and_config_is_checked(tmp_path):
    """``report.daily_at`` runs :meth:`Runtime.report_now`: the runtime's own metrics give
    the resource use; the report is recorded in the admin audit."""
    import asyncio

    from dingskill.runtime.app import Runtime
    from dingskill.runtime.config import ConfigError, load_config

    env = {"DINGSKILL_HOME": str(tmp_path / "home")}
    with pytest.raises(ConfigError, match="report.daily_at: '25:00' is not HH:MM"):
        load_config(None, environ=env, overrides={"report": {"daily_at": "25:00"}})
    with pytest.raises(ConfigError, match="report.open_conversation_id: required"):
        load_config(None, environ=env, overrides={"report": {"post": True}})
    cfg = load_config(
        None,
        environ=env,
        overrides={
            "channels": {"enterprise_chat": {"enabled": False}},
            "report": {"daily_at": "07:30"},
        },
    )
    rt = Runtime(cfg)

    async def run():
        await rt.store.connect()
        try:
            return await rt.report_now()
        finally:
            await rt.store.close()

    report = asyncio.run(run())
    assert report.html.is_file() and report.stats.messages == 0
    assert report.stats.resources["memory_rss_mb"] > 10
    ops = [r["operation"] for r in AuditChain(rt.audit.admin_chain.path).records()]
    assert "report.daily" in ops
