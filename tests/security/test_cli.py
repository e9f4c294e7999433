"""`dingskill access` and `dingskill audit` from the command line."""

from __future__ import annotations

import json

from dingskill.cli.main import main


def test_grant_list_revoke_and_audit_verify(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DINGSKILL_HOME", str(tmp_path))
    monkeypatch.delenv("DINGSKILL_DATA_KEYS", raising=False)
    assert main(["access", "grant", "staff:u1", "operator", "--for", "2h", "--reason", "上线"]) == 0
    assert main(["access", "grant", "staff:u2", "viewer"]) == 0
    capsys.readouterr()
    assert main(["access", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["subject"], r["role"]) for r in rows} == {
        ("staff:u1", "operator"),
        ("staff:u2", "viewer"),
    }
    assert main(["access", "grant", "staff:u3", "root"]) == 1
    assert "unknown role 'root'" in capsys.readouterr().out
    assert main(["access", "revoke", "staff:u2"]) == 0
    assert main(["audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out

    audit = tmp_path / "audit" / "admin.jsonl"
    lines = audit.read_text().splitlines()
    audit.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    assert main(["audit", "verify"]) == 1
    assert "removed" in capsys.readouterr().out


def test_audit_report_lists_holdings_and_encrypted_log(tmp_path, monkeypatch, capsys):
    import base64
    import os

    monkeypatch.setenv("DINGSKILL_HOME", str(tmp_path))
    monkeypatch.setenv("DINGSKILL_DATA_KEYS", "k1:" + base64.b64encode(os.urandom(32)).decode())
    assert main(["access", "token", "deploy-bot", "operator"]) == 0
    token = capsys.readouterr().out.splitlines()[0]
    assert token.startswith("dsk_")
    assert main(["access", "audit", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chain_problems"] == []
    assert [h["role"] for h in report["holdings"]] == ["operator"]
    assert b"deploy-bot" not in (tmp_path / "audit" / "admin.jsonl").read_bytes()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes()
