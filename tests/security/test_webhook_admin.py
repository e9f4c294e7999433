"""A real runtime in webhook mode, attacked over HTTP: replayed signatures, forged commands,
real group traffic (which used to answer 500), oversized / malformed / slow requests, admin
installs from loopback URLs and local-file probing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest
from dingskill.security.rbac import AccessControl
from dingskill.skills.packaging import SkillHome

from .hostile import Recorder, export, tree

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.runtime.harness import RuntimeProcess, wait_until  # noqa: E402

APP = ("dingsecapp", "sec-app-secret")
STAFF = "staff-admin"


def _sign(ts: str) -> str:
    mac = hmac.new(APP[1].encode(), f"{ts}\n{APP[1]}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


_last_ts = [0]


def _fresh() -> tuple[str, str]:
    ts = max(int(time.time() * 1000), _last_ts[0] + 1)  # one pair per message
    _last_ts[0] = ts
    return str(ts), _sign(str(ts))


def _payload(text: str, msg_id: str, group: bool = False, staff: str = "staff-1") -> dict:
    return {
        "msgId": msg_id,
        "conversationId": "cid-group" if group else f"cid-{staff}",
        "senderId": f"$:{staff}",
        "senderStaffId": staff,
        "senderNick": "张三",
        "conversationType": "2" if group else "1",
        "isInAtList": group,
        "atUsers": [{"dingtalkId": "$:bot"}] if group else [],
        "chatbotUserId": "$:bot",
        "text": {"content": text},
        "msgtype": "text",
    }


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    work = tmp_path_factory.mktemp("sec-rt")
    home = SkillHome(work / "home")
    bomb = {
        "triggers": [
            {"intent": "lookup", "words": ["lookup"]},
            {"intent": "bomb", "words": ["explode"]},
        ],
        "intents": {
            "lookup": {"template": "ok"},
            "hello": {"template": "hi"},
            "bomb": {  # doubles its output 60 times: stopped by the template time limit
                "template": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}"
                "{% endmacro %}{{ f(60) }}",
                "fallback": "stopped",
            },
        },
    }
    home.install(export(work / "v1", bomb))
    home.install(export(work / "v2", {**bomb, "version": "1.1.0"}))
    # what a killed install leaves behind: removed when the runtime starts
    (home.skills_dir / "com.example.hostile" / ".install-k1ll3d").mkdir()
    (home.skills_dir / "com.example.hostile" / ".install-k1ll3d" / "skill.yaml").write_text("x")
    (home.home / ".state.json.999.tmp").write_text("{")
    acl = AccessControl(work / "home" / "access.json")
    token = acl.create_token("ops", "admin")
    acl.set_staff_role(STAFF, "admin")
    rt = RuntimeProcess(
        work / "rt",
        work / "home",
        "http://127.0.0.1:9",
        APP,
        extra={
            "server": {"header_timeout_s": 1.0},
            "channels": {"enterprise_chat": {"mode": "webhook"}},
        },
    )
    try:
        rt.start()
        rt.token = token
        rt.home = home
        yield rt
    finally:
        rt.stop()


def _post(rt, payload: dict, pair=None, **kw) -> httpx.Response:
    ts, sign = pair or _fresh()
    return httpx.post(
        f"{rt.url}/api/v1/webhook",
        json=payload,
        headers={"timestamp": ts, "sign": sign},
        timeout=20,
        **kw,
    )


def test_group_traffic_is_answered_not_500(runtime):
    texts = [
        "@bot lookup ticket",
        " lookup ticket",
        "@机器人 ｌｏｏｋｕｐ ｔｉｃｋｅｔ",
        "look\u200bup ticket 2026年12月3日",
        "\ufefflookup ticket\u202e",
        "@bot",
    ]
    for i, text in enumerate(texts):
        r = _post(runtime, _payload(text, f"g-{i}", group=True))
        assert r.status_code == 200, (text, r.status_code, r.text)
        body = r.json()
        assert body["msgtype"] == "text", body
    r = _post(runtime, _payload("@bot lookup ticket", "g-ok", group=True))
    assert r.json()["text"]["content"] == "ok"


def test_a_template_bomb_does_not_stall_the_server(runtime):
    import threading

    result = {}

    def send():
        result["r"] = _post(runtime, _payload("explode now", "b-1"))

    t = threading.Thread(target=send)
    t.start()
    worst = 0.0
    while t.is_alive():
        t0 = time.monotonic()
        assert httpx.get(f"{runtime.url}/healthz", timeout=5).status_code == 200
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.05)
    t.join()
    assert result["r"].json()["text"]["content"] == "stopped"
    assert worst < 1.0, f"/healthz took {worst:.2f} s while a template ran"
    ok = _post(runtime, _payload("lookup ticket", "b-2")).json()
    assert ok["text"]["content"] == "ok"


def test_start_cleans_leftovers_and_warns_about_plaintext(runtime):
    left = list(runtime.home.home.rglob(".install-*")) + list(runtime.home.home.rglob("*.tmp"))
    assert left == []
    assert "PLAINTEXT" in runtime.log.read_text()  # no data key configured in this runtime


def test_replayed_pair_with_another_body_is_refused(runtime):
    pair = _fresh()
    assert _post(runtime, _payload("hello there", "r-1"), pair).status_code == 200
    again = _post(runtime, _payload("hello there", "r-1"), pair)  # a platform retry
    assert again.status_code == 200 and again.json()["msgtype"] == "empty"
    forged = _post(runtime, _payload("/rollback com.example.hostile", "r-2", staff=STAFF), pair)
    assert forged.status_code == 401
    assert "already used with another body" in forged.json()["errmsg"]
    old = str(int(time.time() * 1000) - 301_000)  # outside the 300 s window
    r = _post(runtime, _payload("hello there", "r-3"), (old, _sign(old)))
    assert r.status_code == 401 and "300 s" in r.json()["errmsg"]
    assert runtime.home.installed()[0].version == "1.1.0"


def test_state_changing_commands_need_a_fresh_confirmation(runtime):
    r = _post(runtime, _payload("/rollback com.example.hostile", "c-1", staff=STAFF)).json()
    text = r["text"]["content"]
    assert "/confirm" in text and runtime.home.installed()[0].version == "1.1.0"
    code = text.split("/confirm ")[1].split()[0]
    wrong = _post(runtime, _payload("/confirm 000000x", "c-2", staff=STAFF)).json()
    assert "Nothing to confirm" in wrong["text"]["content"]
    assert runtime.home.installed()[0].version == "1.1.0"
    # the code is single-use and bound to the person: a wrong try consumed it
    r = _post(runtime, _payload(f"/confirm {code}", "c-3", staff=STAFF)).json()
    assert "Nothing to confirm" in r["text"]["content"]
    text = _post(runtime, _payload("/rollback com.example.hostile", "c-4", staff=STAFF)).json()
    code = text["text"]["content"].split("/confirm ")[1].split()[0]
    other = _post(runtime, _payload(f"/confirm {code}", "c-5", staff="staff-1")).json()
    assert "Nothing to confirm" in other["text"]["content"]
    done = _post(runtime, _payload(f"/confirm {code}", "c-6", staff=STAFF)).json()
    assert "rolled back to 1.0.0" in done["text"]["content"]
    assert runtime.home.installed()[0].version == "1.0.0"


def test_admin_api_authenticates_first_and_refuses_bad_input(runtime):
    api = f"{runtime.url}/admin"
    auth = {"Authorization": f"Bearer {runtime.token}"}
    # an unauthenticated 512 MiB upload: refused from the headers, the body is never read
    with socket.create_connection(("127.0.0.1", runtime.port), timeout=10) as s:
        s.sendall(
            b"POST /admin/skills HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 536870912\r\n\r\n" + b"[" * 65536
        )
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 401"), head[:100]
    for body in (b"[]", b"not json"):
        assert httpx.post(f"{api}/skills", content=body, timeout=10).status_code == 401
    for body in (b"[]", b"not json", b'{"source": 5}'):
        r = httpx.post(f"{api}/skills", content=body, headers=auth, timeout=10)
        assert r.status_code == 400, (body, r.status_code, r.text)
    r = httpx.post(f"{api}/skills", content=b"{" * (70 * 1024), headers=auth, timeout=10)
    assert r.status_code == 413 and "limit of 65536 bytes" in r.json()["error"]
    r = httpx.get(f"{api}/audit?limit=abc", headers=auth)
    assert r.status_code == 400 and "limit" in r.json()["error"]
    assert httpx.get(f"{runtime.url}/healthz").status_code == 200


@pytest.mark.parametrize(
    "action, body, field",
    [
        ("release", b"{not json", "not valid JSON"),
        ("release", b"[1, 2]", "JSON dict"),
        ("release", b'{"version": 5, "audience": "everyone"}', "version:"),
        ("release", b'{"audience": "developers", "staff": ["dev-1"]}', "version:"),
        ("release", b'{"version": "1.1.0", "audience": "developers", "staff": "dev-1"}', "staff:"),
        ("release", b'{"version": "1.1.0", "audience": "groups", "groups": [1]}', "groups:"),
        ("release", b'{"version": "1.1.0", "audience": "percent", "percent": "50"}', "percent:"),
        ("release", b'{"version": "1.1.0", "audience": "percent", "percent": true}', "percent:"),
        ("release", b'{"version": "1.1.0", "audience": ["everyone"]}', "audience"),
        ("switch", b'{"version": null}', "version:"),
        ("switch", b'"1.1.0"', "JSON dict"),
    ],
)
def test_admin_release_api_answers_bad_input_with_400_naming_the_field(
    runtime, action, body, field
):
    r = httpx.post(
        f"{runtime.url}/admin/skills/com.example.hostile/{action}",
        content=body,
        headers={"Authorization": f"Bearer {runtime.token}"},
        timeout=20,
    )
    assert r.status_code == 400, (r.status_code, r.text)
    assert field in r.json()["error"], r.text
    assert r.headers.get("connection") == "close"  # a 4xx closes the socket


def test_admin_install_refuses_loopback_redirects_and_file_probing(runtime, tmp_path):
    api = f"{runtime.url}/admin/skills"
    auth = {"Authorization": f"Bearer {runtime.token}"}
    before = tree(runtime.home.home / "skills")
    with Recorder() as server:
        for source in (f"{server.url}/pkg.skill", f"http://localhost:{server.server_address[1]}/p"):
            r = httpx.post(api, json={"source": source}, headers=auth, timeout=20)
            assert r.status_code == 400 and "loopback" in r.json()["error"], r.text
        assert server.requests == []
    errors = []
    for path in ("/etc/passwd", "/etc/shadow", "/nonexistent/x.skill", "/etc"):
        r = httpx.post(api, json={"source": path}, headers=auth, timeout=20)
        assert r.status_code == 400
        errors.append(r.json()["error"].replace(path, "<path>"))
    assert len(set(errors)) == 1 and "missing, unreadable, too large or not a zip" in errors[0]
    assert tree(runtime.home.home / "skills") == before


def test_slow_sockets_are_closed(runtime):
    socks = []
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", runtime.port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            socks.append(s)

        def all_closed():
            for s in socks:
                s.settimeout(0.01)
                try:
                    if s.recv(1) != b"":
                        return False
                except TimeoutError:
                    return False
                except OSError:
                    pass
            return True

        wait_until(all_closed, 15, interval=0.2, what="slow sockets closed by the server")
    finally:
        for s in socks:
            s.close()
    assert httpx.get(f"{runtime.url}/healthz").status_code == 200
