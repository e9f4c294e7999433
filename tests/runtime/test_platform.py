"""What a real bot receives and sends, through the real SDK against the emulator: every
message type, AI cards built as the SDK builds them, interactive-card clicks, the robot
OpenAPI, events, and a stopping runtime under load. One runtime + emulator for the module
where a fresh process is not what is tested."""

from __future__ import annotations

import json
import secrets
import shutil
import time
import uuid
from pathlib import Path

import pytest
from dingskill.emulator import Emulator
from dingskill.emulator.frames import callback_frame
from dingskill.skills import Skill
from dingskill.skills.packaging import SkillHome

from .conftest import APP
from .harness import RuntimeProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "tpl-ai.schema"

HANDLERS = """
def on_media(message, slots, context):
    att = message["attachments"][0]
    return f"got your {att['type']} ({att.get('file_name', att['download_code'])})"
"""


def _media_skill(tmp: Path) -> Path:
    """faq-en plus a handler for pictures and files and a welcome for new group members."""
    src = tmp / "src"
    shutil.copytree(ROOT / "skills" / "faq-en", src / "skills" / "faq-en")
    (src / "datasets").symlink_to(ROOT / "datasets")
    d = src / "skills" / "faq-en"
    text = (d / "skill.yaml").read_text()
    text = text.replace(
        "permissions: [qyapi_robot_sendmsg]", "permissions: [qyapi_robot_sendmsg, handlers]"
    )
    text += (
        "\nmedia:\n  types: [picture, file]\n  handler: on_media\n"
        'events:\n  chat_add_member:\n    template: "Welcome {{ names }}!"\n'
    )
    (d / "skill.yaml").write_text(text)
    (d / "handlers.py").write_text(HANDLERS)
    return Skill.load(d).export(tmp / "dist")


@pytest.fixture(scope="module")
def platform(tmp_path_factory, packages):
    tmp = tmp_path_factory.mktemp("platform")
    emu = Emulator({APP[0]: APP[1]}, ack_timeout=2.0, max_attempts=20)
    emu.start()
    home = SkillHome(tmp / "home")
    home.install(packages["hr-assistant"])
    home.install(_media_skill(tmp), trust=True)
    rt = RuntimeProcess(
        tmp / "rt",
        tmp / "home",
        emu.url,
        APP,
        extra={"events": {"subscribe": ["chat_add_member"]}},
    )
    try:
        rt.start()
        emu.wait_connections(1)
        yield emu, rt, tmp
    finally:
        rt.stop("term")
        emu.stop()


def push(emu: Emulator, msgtype: str, fields: dict, group: bool = False, sender="user-7") -> str:
    """Push a robot message of any documented shape (built here, field by field)."""
    msg_id = f"msg{uuid.uuid4().hex}"
    token = secrets.token_urlsafe(12)
    now = int(time.time() * 1000)
    emu.sessions[token] = (msg_id, now + 90 * 60 * 1000)
    payload = {
        "conversationId": "cid-group-9" if group else f"cid-{sender}",
        "chatbotCorpId": "dingcorp",
        "chatbotUserId": "$:LWCP_v1:$bot",
        "msgId": msg_id,
        "senderNick": "测试用户",
        "isAdmin": False,
        "senderStaffId": sender,
        "sessionWebhookExpiredTime": now + 90 * 60 * 1000,
        "createAt": now,
        "senderCorpId": "dingcorp",
        "conversationType": "2" if group else "1",
        "senderId": f"$:LWCP_v1:${sender}",
        "sessionWebhook": f"{emu.url}/robot/sendBySession?session={token}",
        "robotCode": APP[0],
        "msgtype": msgtype,
        **fields,
    }
    raw = callback_frame(APP[0], "conn", "{frame_id}", payload, now)
    return emu.send("", msg_id=msg_id, raw=raw)


def _text(emu: Emulator, msg_id: str) -> str:
    body = emu.wait_reply(msg_id, timeout=20)
    return body.get("text", {}).get("content") or body.get("markdown", {}).get("text") or ""


def test_every_message_type_is_answered(platform):
    emu, rt, _ = platform
    voice = push(
        emu,
        "audio",
        {"content": {"duration": 3000, "downloadCode": "dc-voice", "recognition": "我想看工资条"}},
    )
    rich = push(
        emu,
        "richText",
        {
            "content": {
                "richText": [
                    {"text": "我想看"},
                    {"pictureDownloadCode": "pdc", "downloadCode": "dc-pic", "type": "picture"},
                    {"text": "工资条"},
                ]
            }
        },
    )
    picture = push(
        emu, "picture", {"content": {"downloadCode": "dc-1", "pictureDownloadCode": "p1"}}
    )
    file = push(
        emu,
        "file",
        {
            "content": {
                "downloadCode": "dc-2",
                "fileName": "报销单.pdf",
                "spaceId": "s",
                "fileId": "f",
            }
        },
    )
    video = push(
        emu, "video", {"content": {"downloadCode": "dc-3", "duration": "5", "videoType": "mp4"}}
    )
    odd = push(emu, "interactiveCard", {"content": {"whatever": 1}})
    assert "工资条" in _text(emu, voice)
    assert "工资条" in _text(emu, rich)
    assert _text(emu, picture) == "got your picture (dc-1)"
    assert _text(emu, file) == "got your file (报销单.pdf)"
    assert "视频" in _text(emu, video)  # no skill takes videos: a polite answer, in Chinese
    assert "这类消息" in _text(emu, odd)  # an unknown type is never silent
    assert rt.metric("dingskill_messages_total", 'channel="stream",outcome="unsupported"') == 2


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
    if not hasattr(emu, "push_event"):
        pytest.skip("this emulator cannot push EVENT frames yet")
    emu.push_event(
        "chat_add_member",
        {"openConversationId": "cid-group-9", "UserId": ["u-8"], "UserNames": ["小王"]},
    )
    wait_until(
        lambda: rt.metric("dingskill_events_total", 'type="chat_add_member",outcome="ok"') == 1, 20
    )


def test_stopping_runtime_under_load_answers_everything_it_received(tmp_path, packages):
    """SIGTERM under load: the connection closes first, every message received is answered;
    a restart on the same database answers the rest (the emulator re-pushes un-ACKed
    messages: its lenient setting) and answers none of them twice."""
    emu = Emulator({APP[0]: APP[1]}, ack_timeout=2.0, max_attempts=50)
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
