"""The runtime against the platform as bots meet it in the field, through the real SDK and the
emulator: the webhook's error codes, a revoked token, the per-app per-API QPS limit under AI
cards, and replies that cannot be delivered (recorded, never dropped silently)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

import pytest
from dingskill.emulator import Emulator
from dingskill.security.audit_chain import AuditChain
from dingskill.skills import Skill
from dingskill.skills.packaging import SkillHome

from .conftest import APP
from .harness import RuntimeProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "tpl-ai-field.schema"
QPS = 5  # a low limit keeps the tests short; the bench runs at the documented 20


def _skill(tmp: Path, name: str, permissions: str) -> Path:
    src = tmp / f"src-{name}-{len(permissions)}"
    shutil.copytree(ROOT / "skills" / name, src / "skills" / name)
    (src / "datasets").symlink_to(ROOT / "datasets")
    y = src / "skills" / name / "skill.yaml"
    y.write_text(y.read_text().replace("permissions: [qyapi_robot_sendmsg]", permissions))
    return Skill.load(src / "skills" / name).export(tmp / f"dist-{name}-{len(permissions)}")


def _runtime(tmp: Path, emu: Emulator, faq_permissions: str, openapi_qps: float, retries=6):
    home = SkillHome(tmp / "home")
    home.install(_skill(tmp, "hr-assistant", "permissions: [Card.Streaming.Write]"))
    home.install(_skill(tmp, "faq-en", faq_permissions))
    return RuntimeProcess(
        tmp / "rt",
        tmp / "home",
        emu.url,
        APP,
        extra={
            "cards": {"ai_template_id": TEMPLATE},
            "limits": {"user_per_minute": 0, "conversation_per_minute": 0},
            "channels": {
                "enterprise_chat": {
                    "mode": "stream",
                    "endpoint": emu.url,
                    "openapi_qps": openapi_qps,
                    "openapi_qps_retries": retries,
                }
            },
        },
    )


@contextlib.contextmanager
def _running(tmp: Path, permissions: str, openapi_qps: int, **kw):
    """An emulator held to the QPS limit and a runtime on it, stopped afterwards."""
    emu = Emulator({APP[0]: APP[1]}, card_templates=[TEMPLATE], qps_limit=QPS)
    emu.start()
    rt = _runtime(tmp, emu, permissions, openapi_qps, **kw)
    try:
        rt.start()
        emu.wait_connections(1)
        yield emu, rt
    finally:
        rt.stop("term")
        emu.stop()


@pytest.fixture(scope="module")
def paced(tmp_path_factory):
    """A runtime pacing its OpenAPI calls at the emulator's limit; faq-en may reply late."""
    with _running(tmp_path_factory.mktemp("paced"), "permissions: [qyapi_robot_sendmsg]", QPS) as r:
        yield r


@pytest.fixture(scope="module")
def unpaced(tmp_path_factory):
    """A runtime that does not pace (openapi_qps 0): it meets the platform's 403s; faq-en
    lacks qyapi_robot_sendmsg."""
    with _running(tmp_path_factory.mktemp("unpaced"), "permissions: []", 0, retries=30) as r:
        yield r


def _finished_cards(emu: Emulator, before: set) -> list[dict]:
    return [
        c
        for t, c in list(emu.cards.items())
        if t not in before
        and c.get("stream")
        and c["stream"][-1].get("isFinalize")
        and c["cardData"]["cardParamMap"].get("flowStatus") == "3"
    ]


def _burst_of_ai_cards(emu: Emulator, n: int, tag: str) -> list[dict]:
    before = set(emu.cards)
    ids = [emu.send("我想看工资条", sender_id=f"{tag}-{i}") for i in range(n)]
    wait_until(lambda: len(_finished_cards(emu, before)) >= n, 60, what=f"{n} finished cards")
    assert [m for m in ids if emu.messages[m].replies] == []  # no text duplicate of a card
    cards = _finished_cards(emu, before)
    assert all("工资条" in c["cardData"]["cardParamMap"]["content"] for c in cards)
    return cards


@pytest.mark.parametrize("errcode", [300001, 300002])
def test_gone_webhook_falls_back_on_its_errcode(paced, errcode):
    emu, rt = paced
    emu.expired_webhook_errcode = errcode
    try:
        before = len(emu.proactive)
        # the payload still promises an hour; the platform no longer knows the session
        far = {"sessionWebhookExpiredTime": 4102444800000}
        msg = emu.send(
            "what are the office hours?", sender_id=f"u-{errcode}", webhook_ttl_ms=-1, extra=far
        )
        wait_until(lambda: len(emu.proactive) > before, 30, what="the reply via the OpenAPI")
    finally:
        emu.expired_webhook_errcode = 300001
    assert emu.proactive[-1]["to_user"] == f"u-{errcode}" and emu.messages[msg].replies == []
    assert emu.counters["webhook_unknown_session"] >= 1


def test_revoked_token_is_fetched_again_once(paced):
    emu, rt = paced
    _burst_of_ai_cards(emu, 1, "pre-revoke")  # the runtime holds a token
    emu.revoke_tokens()
    mark = len(emu.openapi_log)
    _burst_of_ai_cards(emu, 1, "revoked")
    after = emu.openapi_log[mark:]
    assert [r["status"] for r in after][:2] == [401, 200], after[:3]
    assert emu.stats()["tokens"]["issued"] == 2


def test_ai_cards_at_the_limit_stay_under_it(paced):
    emu, rt = paced
    mark = len(emu.openapi_log)
    _burst_of_ai_cards(emu, 12, "paced")
    assert [r for r in emu.openapi_log[mark:] if r["status"] == 403] == []


def test_throttled_calls_are_retried_until_the_card_is_finished(unpaced):
    emu, rt = unpaced
    _burst_of_ai_cards(emu, 8, "unpaced")
    assert emu.counters["qps_limited"] > 0  # the platform refused some: retried
    assert rt.metric("dingskill_openapi_throttled_total") == emu.counters["qps_limited"]


def test_undeliverable_reply_is_recorded(unpaced):
    emu, rt = unpaced
    before = len(emu.proactive)
    msg = emu.send(
        "what are the office hours?",
        sender_id="u-nobody",
        webhook_ttl_ms=-1,
        extra={"sessionWebhookExpiredTime": 4102444800000},
    )
    reason = 'reason="no_permission"'
    wait_until(lambda: rt.metric("dingskill_undelivered_replies_total", reason) == 1, 30)
    assert len(emu.proactive) == before and emu.messages[msg].replies == []
    path = rt.config_path.parent / "audit" / "messages.jsonl"
    rec = wait_until(
        lambda: next((r for r in AuditChain(path).records() if r.get("msg_id") == msg), None),
        10,
        what="the audit record",
    )
    assert rec["result"] == "reply_failed"
    assert "undelivered (no_permission)" in rec["error"] and "qyapi_robot_sendmsg" in rec["error"]


def test_a_hundred_chunks_a_second_end_in_one_finished_card():
    """The AI-card streamer coalesces a fast stream: one card, finished, every chunk in it,
    far fewer streaming calls than chunks and none over the limit."""
    from dingskill.runtime.replies import CardStreamer
    from dingskill.skills.conversation import Message

    with Emulator({APP[0]: APP[1]}, card_templates=[TEMPLATE]) as emu:  # the documented 20/s
        emu.register(users=["u-fast"])
        streamer = CardStreamer(emu.url, *APP, template_id=TEMPLATE)

        async def chunks():
            for i in range(100):
                yield f"{i},"
                await asyncio.sleep(0.01)

        async def run():
            message = Message(text="x", sender_id="u-fast", conversation_id="c", msg_id="m1")
            try:
                return await streamer.stream(message, chunks())
            finally:
                await streamer.close()

        track = asyncio.run(run())
        card = emu.cards[track]
        full = "".join(f"{i}," for i in range(100))
        assert card["cardData"]["cardParamMap"] == {"content": full, "flowStatus": "3"}
        assert card["stream"][-1]["isFinalize"] and card["stream"][-1]["content"] == full
        assert 1 < len(card["stream"]) < 40
        assert [r for r in emu.openapi_log if r["status"] != 200] == []


def test_doctor_and_loader_warn_of_late_replies_without_permission(tmp_path, caplog):
    """A skill with a handler but without qyapi_robot_sendmsg: the loader logs it, doctor
    warns; the same skill holding the permission passes."""
    import json

    from dingskill.runtime.doctor import Status, run_checks
    from dingskill.runtime.skills_loader import SkillSet

    src = tmp_path / "src" / "skills" / "faq-en"
    shutil.copytree(ROOT / "skills" / "faq-en", src)
    (tmp_path / "src" / "datasets").symlink_to(ROOT / "datasets")
    y = src / "skill.yaml"
    y.write_text(
        y.read_text().replace("permissions: [qyapi_robot_sendmsg]", "permissions: [handlers]")
        + "\nmedia:\n  types: [picture]\n  handler: on_media\n"
    )
    (src / "handlers.py").write_text("def on_media(message, slots, context):\n    return 'ok'\n")
    home = SkillHome(tmp_path / "home")
    home.install(Skill.load(src, trust=True).export(tmp_path / "dist"), trust=True)
    skills = SkillSet(home)
    with caplog.at_level("WARNING", logger="dingskill.runtime"):
        assert skills.reload()
    assert len(skills.warnings) == 1 and "media.handler" in skills.warnings[0]
    assert "qyapi_robot_sendmsg" in skills.warnings[0]
    assert "skill may drop late replies" in caplog.text
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "storage": {"type": "memory"},
                "channels": {"enterprise_chat": {"enabled": False}},
                "skills": {"home": str(tmp_path / "home")},
            }
        )
    )
    late = {c.name: c for c in run_checks(cfg, timeout_s=1)}["late replies"]
    assert late.status is Status.WARN and "com.dingskill.faq-en" in late.detail
    assert "qyapi_robot_sendmsg" in late.fix


def test_delivery_outcome_names_each_reason():
    """Each way a reply can fail has its reason: 5xx after the retries, a timeout (maybe
    delivered: not retried), a session the platform no longer knows with no robot OpenAPI."""
    from dingskill.runtime.delivery import Delivery, Undelivered
    from dingskill.runtime.replies import ReplySender
    from dingskill.skills.conversation import Message, Reply

    with Emulator({APP[0]: APP[1]}) as emu:
        hook = emu.messages[emu.send("hi")].payload["sessionWebhook"]
        far = 4102444800000
        message = Message(text="hi", sender_id="u", conversation_id="c", msg_id="m")

        async def run():
            sender = ReplySender(timeout_s=0.5, retries=1, backoff_s=0.01)
            delivery = Delivery(None, sender, None, None)
            try:
                emu.set_faults(webhook_500=2)
                failed = await delivery.attempt(message, Reply(text="a"), hook, far)
                emu.set_faults(webhook_hang=1, hang_seconds=1.0)
                uncertain = await delivery.attempt(message, Reply(text="b"), hook, far)
                gone = Reply(text="c")
                unknown = f"{emu.url}/robot/sendBySession?session=gone"
                no_robot = await delivery.attempt(message, gone, unknown, far)
                ok = await delivery.attempt(message, Reply(text="d"), hook, far)
                return failed, uncertain, no_robot, gone, ok
            finally:
                await sender.close()

        failed, uncertain, no_robot, gone, ok = asyncio.run(run())
    assert failed.reason is Undelivered.WEBHOOK_FAILED
    assert uncertain.reason is Undelivered.WEBHOOK_UNCERTAIN
    assert no_robot.reason is Undelivered.NO_ROBOT and no_robot.reason.permanent
    assert gone.error.startswith("undelivered (no_robot): session webhook gone (errcode 300001)")
    assert ok.ok and ok.reason is None


def test_file_download_waits_out_the_qps_limit(emulator):
    """A handler's file download (synchronous, outside the runtime's pacer) is throttled like
    any OpenAPI call: it retries the platform's 403 QpsLimitForAppkeyAndApi after a back-off
    instead of failing the handler."""
    from dingskill.runtime.files import download_message_file

    emulator.qps_limit = 1
    emulator.files["code-qps"] = {"app": APP[0], "data": b"twelve bytes", "mime": "text/plain"}
    got = [
        download_message_file("code-qps", endpoint=emulator.url, app_key=APP[0], app_secret=APP[1])
        for _ in range(3)
    ]
    assert got == [b"twelve bytes"] * 3
    assert emulator.counters["qps_limited"] >= 1, emulator.counters
