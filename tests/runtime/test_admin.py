"""The admin HTTP API and chat commands under RBAC, audited, with real-time alerts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from dingskill.security.rbac import AccessControl

from .harness import RuntimeProcess, wait_until

APP = ("dingtestapp", "test-app-secret")


@pytest.fixture
def alerts():
    received: list[dict] = []

    class Recorder(BaseHTTPRequestHandler):
        def log_message(self, *a):
            return

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

    srv = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/alerts", received
    srv.shutdown()


def _webhook_message(url: str, text: str, staff: str, msg_id: str) -> httpx.Response:
    ts = str(int(time.time() * 1000))
    sign = base64.b64encode(
        hmac.new(APP[1].encode(), f"{ts}\n{APP[1]}".encode(), hashlib.sha256).digest()
    ).decode()
    payload = {
        "msgId": msg_id,
        "conversationId": f"cid-{staff}",
        "senderId": staff,
        "senderStaffId": staff,
        "conversationType": "1",
        "text": {"content": text},
        "msgtype": "text",
    }
    return httpx.post(url, json=payload, headers={"timestamp": ts, "sign": sign}, timeout=10)


def test_admin_api_and_chat_commands_follow_the_role_matrix(
    tmp_path, home, emulator, runtimes, packages, alerts
):
    hook, received = alerts
    acl = AccessControl(home / "access.json")
    viewer, operator, admin = (acl.create_token(n, n) for n in ("viewer", "operator", "admin"))
    rt = RuntimeProcess(
        tmp_path / "rt",
        home,
        emulator.url,
        APP,
        extra={
            "channels": {"enterprise_chat": {"mode": "webhook"}},
            "audit": {"alert_webhook": hook},
        },
    ).start()
    runtimes.append(rt)
    api = f"{rt.url}/admin"

    def h(token):
        return {"Authorization": f"Bearer {token}"}

    assert httpx.get(f"{api}/skills").status_code == 401
    assert (
        httpx.get(f"{api}/skills", headers=h(viewer)).json()[0]["id"]
        == "com.dingskill.hr-assistant"
    )
    body = {"source": str(packages["faq-en"])}
    for _ in range(3):
        r = httpx.post(f"{api}/skills", json=body, headers=h(viewer))
        assert r.status_code == 403 and r.json()["permission"] == "skills.install"
    wait_until(
        lambda: any("repeated refusals" in a["alert"] for a in received), 10, what="refusal alert"
    )
    r = httpx.post(f"{api}/skills", json=body, headers=h(operator), timeout=30)
    assert r.status_code == 200 and r.json()["id"] == "com.dingskill.faq-en"
    wait_until(
        lambda: any(a["alert"] == "sensitive operation skills.install" for a in received),
        10,
        what="install alert",
    )
    assert httpx.get(f"{api}/audit", headers=h(operator)).status_code == 403
    records = httpx.get(f"{api}/audit?limit=500", headers=h(admin)).json()
    assert any(
        r["operation"] == "skills.install"
        and r["result"] == "ok"
        and r["actor"].startswith("token:")
        for r in records
    )
    assert sum(r["result"] == "denied" for r in records) >= 3
    r = httpx.post(f"{api}/skills/com.dingskill.faq-en/rollback", headers=h(operator))
    assert r.status_code == 400 and "no version before" in r.json()["error"]

    hook_url = f"{rt.url}/api/v1/webhook"
    refused = _webhook_message(hook_url, "/skills", "staff-42", "m-1").json()
    assert "没有执行该操作的权限" in refused["text"]["content"]
    acl.grant("staff:staff-42", "viewer", duration_s=600, actor="staff:boss")
    allowed = _webhook_message(hook_url, "/skills", "staff-42", "m-2").json()
    assert "com.dingskill.faq-en" in allowed["markdown"]["text"]

    def grant_use_recorded():  # the audit record is written after the reply (busy machine)
        records = httpx.get(f"{api}/audit?limit=500", headers=h(admin)).json()
        used = any(
            r["operation"] == "access.grant.used" and r["actor"] == "staff:staff-42"
            for r in records
        )
        return records if used else None

    records = wait_until(grant_use_recorded, 10, interval=0.1, what="access.grant.used record")
    assert any(r["operation"] == "access.report" for r in records)  # the periodic review, at start
