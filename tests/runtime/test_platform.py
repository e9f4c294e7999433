"""What a real bot receives and sends, through the real SDK against the emulator: every
message type, AI cards built as the SDK builds them, interactive-card clicks, the robot
OpenAPI, events, and a stopping runtime under load. One runtime + emulator for the module
where a fresh process is not what is tested."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dingskill.emulator import Emulator
from dingskill.skills import Skill
from dingskill.skills.packaging import SkillHome

from .conftest import APP
from .harness import RuntimeProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "tpl-ai.schema"
ITEMPLATE = "tpl-buttons.schema"

HANDLERS = """
def on_media(message, slots, context):
    from dingskill.runtime.files import FileTooLarge, download_message_file

    att = message["attachments"][0]
    if att.get("file_name", "").endswith(".bin"):
        try:
            data = download_message_file(att["download_code"], max_bytes=1000)
        except FileTooLarge:
            return "file too large"
        return f"read {len(data)} bytes"
    return f"got your {att['type']} ({att.get('file_name', att['download_code'])})"
"""


def _ai_skill(tmp: Path) -> Path:
    """hr-assistant answering in AI cards (Card.Streaming.Write)."""
    src = tmp / "src-hr"
    shutil.copytree(ROOT / "skills" / "hr-assistant", src / "skills" / "hr-assistant")
    (src / "datasets").symlink_to(ROOT / "datasets")
    d = src / "skills" / "hr-assistant"
    y = d / "skill.yaml"
    lines = y.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("permissions:"):
            lines[i] = line.replace("[", "[Card.Streaming.Write, ").replace(", ]", "]")
            break
    else:
        lines.insert(1, "permissions: [Card.Streaming.Write]")
    y.write_text("\n".join(lines) + "\n")
    return Skill.load(d).export(tmp / "dist-hr")


def _media_skill(tmp: Path) -> Path:
    """faq-en plus a handler for pictures and files and a welcome for new group members."""
    src = tmp / "src"
    shutil.copytree(ROOT / "skills" / "faq-en", src / "skills" / "faq-en")
    (src / "datasets").symlink_to(ROOT / "datasets")
    d = src / "skills" / "faq-en"
    text = (d / "skill.yaml").read_text()
    text = text.replace(
        "permissions: [qyapi_robot_sendmsg]",
        "permissions: [qyapi_robot_sendmsg, handlers, Card.Instance.Write]",
    )
    text = text.replace(
        '{title: "Office hours", action: "what are the office hours?"}',
        '{title: "Office hours", intent: company_hours}',
    )
    text += (
        "\nmedia:\n  types: [picture, file]\n  handler: on_media\n"
        'events:\n  chat_add_member:\n    template: "Welcome {{ names }}!"\n'
    )
    (d / "skill.yaml").write_text(text)
    (d / "handlers.py").write_text(HANDLERS)
    return Skill.load(d).export(tmp / "dist")


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("platform")
    emu = Emulator({APP[0]: APP[1]}, card_templates=[TEMPLATE, ITEMPLATE])
    emu.start()
    home = SkillHome(tmp / "home")
    home.install(_ai_skill(tmp))
    home.install(_media_skill(tmp), trust=True)
    rt = RuntimeProcess(
        tmp / "rt",
        tmp / "home",
        emu.url,
        APP,
        extra={
            "events": {"subscribe": ["chat_add_member"]},
            "cards": {"ai_template_id": TEMPLATE, "interactive_template_id": ITEMPLATE},
        },
    )
    try:
        rt.start()
        emu.wait_connections(1)
        yield emu, rt, tmp
    finally:
        rt.stop("term")
        emu.stop()


def _text(emu: Emulator, msg_id: str) -> str:
    body = emu.wait_reply(msg_id, timeout=20)
    return body.get("text", {}).get("content") or body.get("markdown", {}).get("text") or ""


def _card_text(emu: Emulator, before: set, timeout: float = 30) -> tuple[str, dict]:
    """The finished AI card created since ``before``: (its content, the card)."""

    def done():
        for track, card in list(emu.cards.items()):
            if track not in before and card.get("stream") and card["stream"][-1].get("isFinalize"):
                return track
        return None

    track = wait_until(done, timeout, what="a finished AI card")
    return emu.cards[track]["stream"][-1]["content"], emu.cards[track]


def test_every_message_type_is_answered(platform):
    emu, rt, _ = platform
    before = set(emu.cards)
    voice = emu.send(msgtype="audio", recognition="我想看工资条", sender_id="u-voice")
    text, card = _card_text(emu, before)  # hr-assistant answers in an AI card, 1:1
    assert "工资条" in text and emu.messages[voice].replies == []
    assert card["deliveries"][-1]["body"]["openSpaceId"] == "dtv1.card//IM_ROBOT.u-voice"
    assert all(r["success"] for r in card["deliveries"][-1]["results"])
    before = set(emu.cards)
    emu.send(
        msgtype="richText",
        rich_text=[
            {"text": "我想看"},
            {"type": "picture", "downloadCode": "dc-p"},
            {"text": "工资条"},
        ],
        conversation_type="group",
        conversation_id="cid-group-rich",
        sender_id="u-rich",
    )
    text, card = _card_text(emu, before)  # in a group: IM_GROUP.<conversationId>
    assert "工资条" in text
    body = card["deliveries"][-1]["body"]
    assert body["openSpaceId"] == "dtv1.card//IM_GROUP.cid-group-rich"
    assert body["imGroupOpenDeliverModel"] == {"robotCode": APP[0]}
    picture = emu.send(msgtype="picture", download_code="dc-1")
    file = emu.send(msgtype="file", file_name="报销单.pdf")
    video = emu.send(msgtype="video")
    assert _text(emu, picture) == "got your picture (dc-1)"
    assert _text(emu, file) == "got your file (报销单.pdf)"
    small = emu.send(msgtype="file", file_name="a.bin", file_bytes=b"x" * 600)
    big = emu.send(msgtype="file", file_name="b.bin", file_bytes=b"x" * 5000)
    assert _text(emu, small) == "read 600 bytes"  # through messageFiles/download
    assert _text(emu, big) == "file too large"  # the handler's size limit
    assert "视频" in _text(emu, video)  # no skill takes videos: a polite answer, in Chinese
    assert rt.metric("dingskill_messages_total", 'channel="stream",outcome="unsupported"') == 1
    assert rt.metric("dingskill_card_deliveries_total", 'kind="ai",outcome="ok"') == 2


def test_unknown_message_type_gets_a_polite_answer():
    from dingskill.runtime.channels.parse import parse_robot_message
    from dingskill.runtime.media import MediaPolicy

    data = {
        "msgId": "m",
        "conversationId": "c",
        "senderId": "s",
        "msgtype": "location",
        "content": {},
    }
    message, _, _ = parse_robot_message(data, "stream")
    assert message.msgtype == "location" and message.text == ""
    assert "这类消息" in MediaPolicy().polite(message, {}).text
    en = MediaPolicy().polite(message, {"history": [{"user": "hello there"}]})
    assert "this kind of message" in en.text


def test_reply_after_the_webhook_expired_goes_through_the_robot_openapi(platform):
    emu, rt, _ = platform
    before = len(emu.proactive)
    msg = emu.send("what are the office hours?", sender_id="u-late", webhook_ttl_ms=0)
    wait_until(lambda: len(emu.proactive) > before, 30, what="a proactive message")
    sent = emu.proactive[-1]
    assert sent["to_user"] == "u-late" and sent["msgKey"] == "sampleText"
    assert "8:30" in sent["msgParam"]["content"] and emu.messages[msg].replies == []
    wait_until(
        lambda: rt.metric("dingskill_openapi_messages_total", 'outcome="ok",purpose="reply"') == 1,
        10,
        what="the OpenAPI reply counted",
        output=lambda: "\n".join(x for x in rt.metrics().splitlines() if "openapi" in x),
    )


def test_card_click_runs_the_intent_and_updates_the_card(platform):
    emu, rt, _ = platform
    before = set(emu.cards)
    emu.send("help", sender_id="u-click")
    track = wait_until(
        lambda: next(
            (t for t, c in emu.cards.items() if t not in before and c.get("delivered")), None
        ),
        30,
        what="an interactive card",
    )
    buttons = json.loads(emu.cards[track]["cardData"]["cardParamMap"]["buttons"])
    assert buttons[0]["text"] == "Office hours"
    emu.card_click(track, "u-click", action_id=buttons[0]["actionId"])
    wait_until(lambda: emu.cards[track]["updates"], 30, what="the card updated by the callback")
    assert "8:30" in emu.cards[track]["cardData"]["cardParamMap"]["text"]
    wait_until(lambda: rt.metric("dingskill_card_callbacks_total", 'outcome="ok"') == 1, 10)


def test_ai_card_bodies_are_the_sdks(platform, monkeypatch):
    """Our deliver body equals the one the SDK's AICardReplier posts, group and 1:1."""
    import dingtalk_stream.card_replier as cr
    from dingskill.runtime.channels.parse import parse_robot_message
    from dingskill.runtime.replies import deliver_body
    from dingtalk_stream import ChatbotMessage

    posted: list[tuple[str, dict]] = []

    class Resp:
        text = "{}"

        def raise_for_status(self):
            return None

    monkeypatch.setattr(
        cr.requests,
        "post",
        lambda url, headers=None, json=None, **kw: posted.append((url, json)) or Resp(),
    )

    class Client:
        credential = type("C", (), {"client_id": APP[0]})()

        def get_access_token(self):
            return "token"

    for group in (True, False):
        data = {
            "conversationId": "cid-g" if group else "cid-u",
            "msgId": "m1",
            "senderId": "$:LWCP_v1:$u1",
            "senderStaffId": "staff-1",
            "senderNick": "n",
            "conversationType": "2" if group else "1",
            "msgtype": "text",
            "text": {"content": "hi"},
            "robotCode": APP[0],
        }
        posted.clear()
        track = cr.AICardReplier(Client(), ChatbotMessage.from_dict(data)).start(
            TEMPLATE, {"content": ""}
        )
        create, deliver = posted[0][1], posted[1][1]
        message, _, _ = parse_robot_message(data, "stream")
        assert deliver == deliver_body(message, track, APP[0])
        space = "IM_GROUP.cid-g" if group else "IM_ROBOT.staff-1"
        assert deliver["openSpaceId"] == f"dtv1.card//{space}"
        assert create["callbackType"] == "STREAM" and create["cardTemplateId"] == TEMPLATE
        assert json.loads(json.dumps(create["cardData"]))["cardParamMap"]["flowStatus"] == "1"


def test_event_welcomes_a_new_member(platform):
    emu, rt, _ = platform
    emu.send("hello", conversation_type="group", conversation_id="cid-group-9")  # the robot's group
    before = len(emu.proactive)
    eid = emu.push_event(
        "chat_add_member",
        {"openConversationId": "cid-group-9", "UserId": ["u-8"], "UserNames": ["小王"]},
    )
    wait_until(lambda: len(emu.proactive) > before, 30, what="the welcome")
    assert emu.proactive[-1]["to_group"] == "cid-group-9"
    assert emu.proactive[-1]["msgParam"]["content"] == "Welcome 小王!"
    wait_until(lambda: emu.push(eid).get("acked"), 30, what="the event ACKed SUCCESS")


def test_stopping_runtime_under_load_answers_everything_it_received(tmp_path, packages):
    """SIGTERM under load: the connection closes first, every message received is answered;
    a restart on the same database answers the rest (the emulator re-pushes un-ACKed
    messages: its lenient setting) and answers none of them twice."""
    emu = Emulator({APP[0]: APP[1]}, ack_timeout=2.0, max_attempts=50, robot_delivery="until_ack")
    emu.start()
    home = SkillHome(tmp_path / "home")
    home.install(packages["hr-assistant"])
    db = {"type": "sqlite", "path": str(tmp_path / "runtime.db")}
    extra = {"limits": {"user_per_minute": 0, "conversation_per_minute": 0}}
    first = RuntimeProcess(
        tmp_path / "rt1", tmp_path / "home", emu.url, APP, storage=db, extra=extra
    )
    second = RuntimeProcess(
        tmp_path / "rt2", tmp_path / "home", emu.url, APP, storage=db, extra=extra
    )
    try:
        first.start()
        emu.wait_connections(1)
        ids = [emu.send("我想看工资条", sender_id=f"load-{i % 20}") for i in range(150)]
        wait_until(lambda: sum(bool(emu.messages[m].replies) for m in ids) >= 20, 30)
        assert first.stop("term") == 0
        msgs = [emu.messages[m] for m in ids]
        acked = [m for m in msgs if m.acked]
        assert acked and all(m.replies for m in acked)
        answered_at_stop = sum(bool(m.replies) for m in msgs)
        second.start()
        wait_until(lambda: all(emu.messages[m].replies for m in ids), 60, what="all answered")
        assert [m.msg_id for m in msgs if len(m.replies) > 1] == []
        assert answered_at_stop >= len(acked)
    finally:
        for rt in (first, second):
            if rt.proc is not None:
                rt.stop("kill")
        emu.stop()


def test_dingskill_send_writes_to_a_user_and_a_group(platform, tmp_path):
    import os
    import subprocess
    import sys

    emu, _, _ = platform
    emu.send("hello", sender_id="u-send")  # a staff id of the organisation
    emu.send("hello", conversation_type="group", conversation_id="cid-send-group")
    cfg = tmp_path / "send.json"
    cfg.write_text(json.dumps({"channels": {"enterprise_chat": {"endpoint": emu.url}}}))
    env = {**os.environ, "DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}

    def send(*args):
        cmd = [sys.executable, "-m", "dingskill.cli.main", "send", *args, "--config", str(cfg)]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)

    before = len(emu.proactive)
    out = send("--user", "u-send", "审批已通过")
    assert out.returncode == 0, out.stderr
    assert emu.proactive[before]["to_user"] == "u-send"
    assert emu.proactive[before]["msgParam"] == {"content": "审批已通过"}
    out = send("--group", "cid-send-group", "**会议**改到三点", "--title", "通知")
    assert out.returncode == 0, out.stderr
    assert emu.proactive[-1]["msgKey"] == "sampleMarkdown"
    out = send("--user", "nobody-here", "hi")
    assert out.returncode == 1 and "not sent" in out.stderr
