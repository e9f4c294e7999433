"""Negative tests of the trust boundaries that need no server: broker message keys and replay
tokens, the session-webhook allow-list, terminal output, CSV cells, report markup, manifest
names, package member names and `audit show`. Hypothesis varies the inputs."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
import zipfile

import pytest
from dingskill import csvsafe
from dingskill.cli._print import safe_line, strip_controls
from dingskill.markup import html_escape, md_escape
from dingskill.runtime.broker.auth import (
    HDR_KEY_ID,
    HDR_SIGNATURE,
    BrokerKeyError,
    MessageKeys,
    WebhookHosts,
)
from dingskill.runtime.config import load_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
K1, K2 = "k2026b:" + "b" * 32, "k2026a:" + "a" * 32


def _keys(*entries: str, secret: str | None = "app-secret") -> MessageKeys:
    env = {"DINGSKILL_BROKER_KEYS": ",".join(entries)} if entries else {}
    if secret:
        env["DINGSKILL_APP_SECRET"] = secret
    return MessageKeys.from_config(load_config(environ=env), environ=env)


# ---------------------------------------------------------------- broker message keys
@FAST
@given(
    body=st.binary(max_size=300),
    msg_id=st.text(max_size=40),
    channel=st.sampled_from(["stream", "webhook"]),
)
def test_a_signed_message_verifies_and_any_change_is_refused(body, msg_id, channel):
    keys = _keys(K1)
    headers = {"x-dingskill-channel": channel, **keys.sign(body, msg_id, channel)}
    assert keys.verify(body, msg_id, headers) is None
    assert keys.verify(body + b" ", msg_id, headers).startswith("tampered")
    assert keys.verify(body, msg_id + "x", headers).startswith("tampered")
    other = "webhook" if channel == "stream" else "stream"
    assert keys.verify(body, msg_id, {**headers, "x-dingskill-channel": other}).startswith(
        "tampered"
    )
    assert keys.verify(body, msg_id, {}).startswith("unauthenticated")
    forged = {**headers, HDR_SIGNATURE: keys.sign(body, msg_id, channel)[HDR_SIGNATURE][:-4]}
    assert keys.verify(body, msg_id, forged) is not None


@FAST
@given(sig=st.text(max_size=60), kid=st.text(max_size=20))
def test_made_up_signatures_are_refused(sig, kid):
    keys = _keys(K1)
    assert keys.verify(b"{}", "m1", {HDR_KEY_ID: kid, HDR_SIGNATURE: sig}) is not None


def test_keys_rotate_current_and_previous_verify_unknown_does_not():
    old, new = _keys(K2), _keys(K1, K2)
    headers = old.sign(b"{}", "m1", "stream")
    assert new.verify(b"{}", "m1", headers) is None  # previous key still accepted
    assert new.sign(b"{}", "m1", "stream")[HDR_KEY_ID] == "k2026b"  # the current one signs
    retired = _keys(K1)
    assert "unknown key id" in retired.verify(b"{}", "m1", headers)
    # the key derived from the AppSecret is the same on every gateway and worker, and only
    # they hold it
    assert _keys().verify(b"{}", "m1", _keys().sign(b"{}", "m1", "stream")) is None
    assert _keys(secret="other").verify(b"{}", "m1", _keys().sign(b"{}", "m1", "stream"))


@pytest.mark.parametrize(
    "entry, why",
    [("nokey", "KEY_ID:SECRET"), ("k1:short", "at least 16"), (f"{K1},{K1}", "listed twice")],
)
def test_bad_keys_are_named(entry, why):
    with pytest.raises(BrokerKeyError, match=why):
        _keys(entry)


def test_no_key_at_all_is_a_clear_error():
    with pytest.raises(BrokerKeyError, match="DINGSKILL_BROKER_KEYS"):
        _keys(secret=None)


def test_replay_tokens_are_bound_to_the_message_and_expire():
    keys = _keys(K1)
    tok = keys.mint_replay("m1", b"{}", now_ms=1_000_000)
    assert keys.check_replay(tok, "m1", b"{}", now_ms=1_000_500)[0] is None
    assert keys.check_replay(tok, "m2", b"{}", now_ms=1_000_500)[0] is not None
    assert keys.check_replay(tok, "m1", b"{ }", now_ms=1_000_500)[0] is not None
    late = 1_000_000 + int(keys.replay_ttl_s * 1000) + 1
    assert "expired" in keys.check_replay(tok, "m1", b"{}", now_ms=late)[0]
    assert keys.check_replay(tok, "m1", b"{}", now_ms=1_000_500)[1]  # its nonce, used once
    assert _keys(K2).check_replay(tok, "m1", b"{}", now_ms=1_000_500)[0] is not None
    for forged in (None, "", "1", "app.1.2.3", tok.replace(".", "..", 1)):
        assert keys.check_replay(forged, "m1", b"{}")[0] is not None


# ---------------------------------------------------------------- session webhook hosts
def _hosts(**broker) -> WebhookHosts:
    cfg = load_config(
        overrides={
            "channels": {"enterprise_chat": {"endpoint": "http://127.0.0.1:5555"}},
            "broker": broker,
        }
    )
    return WebhookHosts.from_config(cfg)


def test_session_webhooks_only_to_the_platform():
    hosts = _hosts()
    for url in (
        "https://oapi.dingtalk.com/robot/sendBySession?session=x",
        "https://api.dingtalk.com/v1.0/robot",
        "http://127.0.0.1:5555/robot/sendBySession?session=x",  # the configured endpoint
    ):
        assert hosts.allows(url), url
    for url in (
        "http://oapi.dingtalk.com/robot/sendBySession",  # not TLS
        "https://oapi.dingtalk.com.evil.example/x",
        "https://evil.example/?https://oapi.dingtalk.com/",
        "https://oapi.dingtalk.com@evil.example/x",
        "https://oapi.dingtalk.com:8443/x",
        "http://127.0.0.1:5556/x",  # another port of the same loopback
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "//evil.example/x",
        "javascript:alert(1)",
    ):
        assert not hosts.allows(url), url
    assert _hosts(session_webhook_hosts=["hooks.example.com:8443"]).allows(
        "https://hooks.example.com:8443/x"
    )
    with pytest.raises(BrokerKeyError, match=r"session_webhook_hosts\[0\]"):
        _hosts(session_webhook_hosts=["ftp://x"])


@FAST
@given(host=st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True))
def test_no_other_host_is_allowed(host):
    hosts = _hosts()
    if host not in ("oapi.dingtalk.com", "api.dingtalk.com"):
        assert not hosts.allows(f"https://{host}/robot/sendBySession")


# ---------------------------------------------------------------- terminal output
_ESC_SEQS = [
    "\x1b[2J\x1b[H",  # clear the screen
    "\x1b]52;c;ZWNobyBwd25lZA==\x07",  # OSC 52: write the clipboard
    "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",  # OSC 8 link
    "\x9b31m",  # 8-bit CSI
    "\x9d0;title\x9c",  # 8-bit OSC
    "\x1bP1$qm\x1b\\",  # DCS
    "\x1b]0;unterminated title",
    "\r\x1b[1A\x1b[K",  # rewrite the previous line
    "\u202eevil\u202c",  # bidi override
]


@FAST
@given(
    st.lists(
        st.one_of(st.text(max_size=20), st.sampled_from(_ESC_SEQS), st.characters()), max_size=12
    )
)
def test_no_control_sequence_survives(parts):
    out = strip_controls("".join(parts))
    assert "\x1b" not in out
    assert not [c for c in out if unicodedata.category(c) == "Cc" and c not in "\n\t"]
    assert not any(c in out for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    assert "\n" not in safe_line("".join(parts))


def test_plain_and_chinese_text_is_kept():
    text = "查询工资条 payslip: 3 items\n\tnext line"
    assert strip_controls(text) == text
    assert strip_controls("a\x1b]8;;https://x\x1b\\link\x1b]8;;\x1b\\b") == "alinkb"


def test_every_cli_command_prints_through_the_filter(tmp_path, capsys, monkeypatch):
    """`dingskill audit show` prints a record holding a stranger's text: no control reaches
    the terminal (the filter wraps stdout for every command)."""
    from dingskill.cli.main import main
    from dingskill.security.audit_chain import AuditChain

    monkeypatch.delenv("DINGSKILL_DATA_KEY", raising=False)
    path = tmp_path / "audit" / "a.jsonl"
    AuditChain(path).append({"text": "hi\x9b2J\x9d52;c;cHduZWQ=\x9c there", "ts_ms": 1})
    assert main(["audit", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert not [c for c in out if "\x80" <= c <= "\x9f" or c == "\x1b"]
    assert "there" in out


def test_audit_show_of_a_missing_file_is_one_line_and_creates_nothing(tmp_path, capsys):
    from dingskill.cli.main import main

    missing = tmp_path / "no" / "such" / "audit.jsonl"
    assert main(["audit", "show", str(missing)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such audit file" in err[0]
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- CSV cells
@FAST
@given(st.lists(st.text(min_size=1, max_size=30).filter(lambda t: " ".join(t.split())), max_size=8))
def test_review_csv_cells_are_inert_and_read_back_as_typed(texts):
    from dingskill.runtime.review import export_review

    rows = [
        {
            "text": " ".join(t.split()),
            "intent": "oos",
            "reason": "unrecognised",
            "confidence": 0.1,
            "count": 1,
            "skill": "-",
        }
        for t in dict.fromkeys(texts)
    ]
    buf = io.StringIO()
    w = csvsafe.writer(buf)
    for r in rows:
        w.writerow([r["text"], r["intent"]])
    for cells in csv.reader(io.StringIO(buf.getvalue())):
        for cell in cells:
            assert not cell.startswith(csvsafe.FORMULA_START)
            assert csvsafe.restore(cell) == cell or cell.startswith("'")
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = export_review(rows, Path(d) / "review.csv")
        from dingskill.datasets import load

        if rows:
            back = load(path)
            assert list(back.df["text"]) == [r["text"] for r in rows]


def test_formula_cells_get_a_quote_and_quotes():
    buf = io.StringIO()
    csvsafe.writer(buf).writerow(
        ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", "\tx", "ok", 3]
    )
    line = buf.getvalue().strip()
    assert line == ('"\'=HYPERLINK(""http://x"",""y"")","\'+1","\'-2","\'@SUM(A1)","\'\tx","ok",3')


# ---------------------------------------------------------------- report markup
HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "![x](https://evil.example/t.png)",
    "<img src=x onerror=alert(1)>",
    "a|b\n# heading",
    "<https://evil.example>",
]


@FAST
@given(st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(max_size=40)))
def test_markdown_and_html_escaping(name):
    md, ht = md_escape(name), html_escape(name)
    assert "<" not in md and "\n" not in md
    assert "](" not in md.replace("\\]", "")
    assert "<" not in ht and ">" not in ht and '"' not in ht


def test_daily_report_escapes_intent_and_skill_names(tmp_path):
    pytest.importorskip("matplotlib")
    from dingskill.runtime.report.collect import DailyStats, SkillStats
    from dingskill.runtime.report.render import render, summary_markdown

    st_ = DailyStats(
        0,
        3_600_000,
        messages=3,
        top_intents=[(n, 1) for n in HOSTILE_NAMES],
        skills=[SkillStats("<b>x</b>", 2, 1)],
        alerts=[{"ts_ms": 0, "operation": "x", "object": "[a](javascript:1)", "detail": "<i>"}],
    )
    md, ht = render(st_, tmp_path, "report <b>")
    text, page = md.read_text().replace("\\]", ""), ht.read_text()
    body = page.split("<h2>Plots</h2>")[0]
    for raw in ("<script", "<img", "](javascript", "<b>", "<i>", "<https"):
        assert raw not in text, raw  # Markdown: neither HTML nor links
    for raw in ("<script", "<img", "<b>", "<i>", "<https"):
        assert raw not in body, raw  # HTML: text only (a Markdown link is plain text there)
    assert "<" not in summary_markdown(st_, "t <x>")


# ---------------------------------------------------------------- manifest names
def _manifest(intent: str, slot: str = "when") -> str:
    return json.dumps(
        {
            "id": "com.example.names",
            "name": "names",
            "version": "0.1.0",
            "languages": ["en"],
            "dataset": {"train": "data.csv"},
            "slots": {slot: {"type": "date"}},
            "intents": {intent: {"template": "ok"}},
        },
        ensure_ascii=False,
    )


@pytest.mark.parametrize("name", ["leave_request", "请假", "请假.申请-2", "hr.leave", "_x"])
def test_safe_names_validate(name):
    from dingskill.skills.manifest import parse_manifest

    parse_manifest(_manifest(name, name))


@FAST
@given(
    st.text(min_size=1, max_size=30).filter(
        lambda t: any(not (c.isalnum() or c in "_.-") for c in t) or t[0] in ".-"
    )
)
def test_unsafe_intent_and_slot_names_are_refused(name):
    from dingskill.skills.errors import ManifestError
    from dingskill.skills.manifest import parse_manifest

    with pytest.raises(ManifestError):
        parse_manifest(_manifest(name))
    with pytest.raises(ManifestError):
        parse_manifest(_manifest("ok", name))


def test_the_example_skills_still_validate():
    from pathlib import Path

    from dingskill.skills.manifest import parse_manifest

    root = Path(__file__).resolve().parents[2] / "skills"
    for path in sorted(root.glob("*/skill.yaml")):
        parse_manifest(path.read_text(encoding="utf-8"), str(path))


# ---------------------------------------------------------------- package member names
@pytest.mark.parametrize(
    "a, b",
    [
        ("skill.yaml", "SKILL.YAML"),
        ("data/caf\u00e9.txt", "data/cafe\u0301.txt"),  # NFC and NFD
        ("handlers.py", "Handlers.PY"),
        ("data/stra\u00dfe", "data/STRASSE"),
    ],
)
def test_member_names_colliding_on_a_file_system_are_refused(a, b):
    from dingskill.skills.packaging.errors import UnsafeArchiveError
    from dingskill.skills.packaging.verify import read_archive

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(a, b"one")
        zf.writestr(b, b"two")
    with pytest.raises(UnsafeArchiveError, match="collides"):
        read_archive(buf.getvalue())


def test_the_html_evaluation_report_escapes_intent_names_and_utterances():
    from dingskill import IntentClassifier, evaluate

    bad, other = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>"
    texts = ["check my payslip", "payslip please", "book a room", "meeting room now"] * 3
    labels = [bad, bad, other, other] * 3
    model = IntentClassifier(random_state=0).fit(texts, labels)
    tests = ["payslip <b>now</b>", "room <script>x</script>", "my payslip", "a room"]
    page = evaluate(
        model, tests, [bad, bad, other, other], sweep=False, name="<i>name</i>"
    ).to_html()
    import re

    page = re.sub(r'<img alt="plot" src="data:image/png;base64,[A-Za-z0-9+/=]*"/>', "", page)
    for raw in ("<script", "<img", "<b>", "<i>"):
        assert raw not in page, raw  # the report's own plots removed above
    assert "&lt;script&gt;" in page
