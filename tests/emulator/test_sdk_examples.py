"""The official Python SDK's own example programs, unmodified, against the emulator.

Their code is not part of this project: point ``DINGSKILL_SDK_EXAMPLES`` at the ``examples/``
folder of a checkout of open-dingtalk/dingtalk-stream-sdk-python (copy it anywhere; the
programs are run from a temporary directory with only ``DINGTALK_OPENAPI_ENDPOINT`` and their
``--client_id`` / ``--client_secret`` options set). Without it these tests are skipped; the
SDK-only bots of ``sdk_bots.py`` cover the same ground in every run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import KEY, SECRET, t

EXAMPLES = os.environ.get("DINGSKILL_SDK_EXAMPLES", "")
pytestmark = pytest.mark.skipif(
    not EXAMPLES or not Path(EXAMPLES).is_dir(),
    reason="set DINGSKILL_SDK_EXAMPLES to the SDK's examples/ folder to run its programs",
)


@pytest.fixture
def run_example(make_emulator):
    procs: list[tuple[subprocess.Popen, Path]] = []

    def run(emu, relpath: str):
        work = Path(tempfile.mkdtemp(prefix="sdk-example-"))
        script = work / Path(relpath).name
        shutil.copy(Path(EXAMPLES) / relpath, script)
        log = work / "out.log"
        proc = subprocess.Popen(
            [sys.executable, str(script), "--client_id", KEY, "--client_secret", SECRET],
            cwd=work,
            env={**os.environ, "DINGTALK_OPENAPI_ENDPOINT": emu.url},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, work))
        try:
            emu.wait_connections(1, timeout=t(30))
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from exc
        return proc

    yield run
    for proc, work in procs:
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def test_calcbot_answers_a_group_message(make_emulator, run_example):
    emu = make_emulator()
    run_example(emu, "calcbot/calcbot.py")
    msg = emu.send("@办公助手 1+2", conversation_type="group")
    assert emu.wait_reply(msg, t(10))["text"]["content"] == "Q: 1+2\nA: 3"


def test_helloworld_acks_events_and_messages(make_emulator, run_example):
    emu = make_emulator(ack_timeout=1.0)
    run_example(emu, "helloworld/helloworld.py")
    ev = emu.push_event("user_add_org", {"userId": ["u1"]})
    msg = emu.send("你好")
    emu.wait_for(lambda: emu.push(ev)["acked"] and emu.message(msg)["acked"], t(10))
    assert emu.push(ev)["attempts"] == 1


def test_cardcallback_response_updates_the_card(make_emulator, run_example):
    emu = make_emulator()
    run_example(emu, "cardcallback/cardcallback.py")
    emu.cards["card-1"] = {
        "kind": "instance",
        "app": KEY,
        "created": {},
        "template": "",
        "callbackType": "STREAM",
        "cardData": {"cardParamMap": {}},
        "privateData": {},
        "spaces": [],
        "delivered": True,
        "deliveries": [],
        "updates": [],
        "stream": [],
        "callbacks": [],
    }
    click = emu.card_click("card-1", "myUserId", "ok")
    emu.wait_for(lambda: emu.push(click)["acked"], t(10))
    card = emu.cards["card-1"]
    assert card["cardData"]["cardParamMap"] == {"intParam": "1", "trueParam": "true"}
    assert card["privateData"]["myUserId"]["cardParamMap"]["floatParam"] == "1.23"


def test_cardbot_sends_and_updates_a_markdown_card(make_emulator, run_example):
    emu = make_emulator()
    run_example(emu, "cardbot/cardbot.py")
    emu.wait_for(lambda: emu.apps[KEY].off_duty is not None, t(10))  # set at start
    emu.send("卡片", sender_id="staff-3")
    emu.wait_for(lambda: any(c["updates"] for c in emu.cards.values()), t(20))
    (card,) = emu.cards.values()
    assert card["deliveries"][0]["results"][0]["success"] is True
    assert "已更新" in json.dumps(card["cardData"], ensure_ascii=False)


def test_agent_example_replies_with_an_ai_card(make_emulator, run_example):
    emu = make_emulator()
    run_example(emu, "agent/hello.py")
    g = emu.graph_request("/v1/actions/example/weather/get", {"location": "杭州"})
    body = emu.wait_reply(g, t(10))
    assert body["contentType"] == "ai_card" and "天气" in body["content"]["cardData"]["content"]
