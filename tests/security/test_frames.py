"""Malformed Stream frames against the real SDK in a real runtime: each is ACKed (when it
names a message id) and audited, the connection stays up, and the next message is answered."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from dingskill.emulator import Emulator
from dingskill.security.audit_chain import AuditChain
from dingskill.skills.packaging import SkillHome

from .hostile import export

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.runtime.harness import RuntimeProcess, wait_until  # noqa: E402

APP = ("dingframeapp", "frame-app-secret")


def _callback(data: str) -> str:
    return json.dumps(
        {
            "specVersion": "1.0",
            "type": "CALLBACK",
            "headers": {
                "appId": APP[0],
                "contentType": "application/json",
                "messageId": "{frame_id}",
                "topic": "/v1.0/im/bot/messages/get",
            },
            "data": data,
        }
    )


def _robot(**over) -> str:
    body = {
        "msgId": "m-bad",
        "conversationId": "cid-1",
        "senderId": "s-1",
        "conversationType": "1",
        "msgtype": "text",
        "text": {"content": "hello"},
        **over,
    }
    return _callback(json.dumps(body))


@pytest.fixture
def stack(tmp_path):
    emu = Emulator({APP[0]: APP[1]}, ack_timeout=1.0, max_attempts=2)
    emu.start()
    home = SkillHome(tmp_path / "home")
    home.install(export(tmp_path / "s", {}))
    rt = RuntimeProcess(tmp_path / "rt", tmp_path / "home", emu.url, APP)
    try:
        rt.start()
        emu.wait_connections(1)
        yield emu, rt
    finally:
        rt.stop()
        emu.stop()


def test_malformed_frames_are_acked_and_audited(stack):
    emu, rt = stack
    frames = {
        "not json": "this is not json {frame_id}",
        "data not json": _callback("{not json"),
        "text is a string": _robot(text="plain text instead of an object"),
        "createAt not a number": _robot(createAt="yesterday", msgId="m-bad-2"),
        "a JSON list": "[1, 2, 3]",
    }
    ids = {what: emu.send("x", raw=raw) for what, raw in frames.items()}
    for what in ("data not json", "text is a string", "createAt not a number"):
        wait_until(lambda w=what: emu.messages[ids[w]].acked, 20, what=f"ACK of {what}")
    ok = emu.send("lookup ticket")
    assert "ok" in json.dumps(emu.wait_reply(ok, timeout=20), ensure_ascii=False)
    assert emu.connections() == 1  # never reconnected
    audit = Path(rt.config_path).parent / "audit" / "messages.jsonl"

    def rejected():
        if not audit.exists():
            return []
        return [
            r
            for r in AuditChain(audit).records()
            if r.get("result") == "rejected" and r.get("operation") in ("frame", "message")
        ]

    wait_until(lambda: len(rejected()) >= 5, 20, what="5 audit records of rejected frames")
    errors = " | ".join(r.get("error", "") for r in rejected())
    assert "not JSON" in errors and ("createAt" in errors or "int()" in errors), errors
