"""Every tampering with an audit log that `dingskill audit verify` once reported as intact:
the last records deleted, the file emptied, a record altered with every later link
recomputed, the head cut with a matching anchor, a plaintext record appended to an encrypted
log; and the store's copy of the chain."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from dingskill.cli.main import main
from dingskill.security.audit_chain import DAY_MS, AuditChain, verify_chain, verify_copy
from dingskill.security.crypto import Keyring

NOW = 1_800_000_000_000


def _fill(chain: AuditChain, n: int = 6, start: int = NOW - 1000) -> None:
    chain.append_many(
        [
            {"ts_ms": start + i, "actor": f"staff:{i}", "operation": "message", "result": "ok"}
            for i in range(n)
        ]
    )


@pytest.fixture(params=["plain", "encrypted"])
def chain(request, tmp_path):
    ring = Keyring({"k1": os.urandom(32)}, "k1") if request.param == "encrypted" else None
    c = AuditChain(tmp_path / "audit" / "messages.jsonl", keyring=ring)
    _fill(c)
    assert c.verify() == []
    return c


def _lines(c):
    return c.path.read_text().splitlines()


def _write(c, lines):
    c.path.write_text("".join(x + "\n" for x in lines))


def _kinds(c):
    return {p.kind for p in verify_chain(c.path, c.keyring)}


def _cli(c, capsys, monkeypatch) -> str:
    if c.keyring is not None:
        import base64

        monkeypatch.setenv(
            "DINGSKILL_DATA_KEYS", "k1:" + base64.b64encode(c.keyring._keys["k1"]).decode()
        )
    code = main(["audit", "verify", str(c.path)])
    out = capsys.readouterr().out
    assert code == 1 and "intact" not in out, out
    return out


def test_last_records_deleted(chain, capsys, monkeypatch):
    _write(chain, _lines(chain)[:-2])
    assert "truncated" in _kinds(chain)
    assert "head records seq 6 but the file ends at seq 4" in _cli(chain, capsys, monkeypatch)


def test_file_emptied_or_removed(chain, capsys, monkeypatch):
    chain.path.write_text("")
    assert "truncated" in _kinds(chain)
    _cli(chain, capsys, monkeypatch)
    chain.path.unlink()
    assert "truncated" in _kinds(chain)


def test_record_altered_and_every_later_link_recomputed(tmp_path, capsys, monkeypatch):
    c = AuditChain(tmp_path / "a.jsonl")
    _fill(c)
    entries = [json.loads(x) for x in _lines(c)]
    entries[1]["record"]["result"] = "denied"
    prev = entries[0]["mac"]
    for e in entries[1:]:  # what an attacker without the key can do: a plain SHA-256 chain
        e["prev"] = prev
        e["mac"] = hashlib.sha256((prev + json.dumps(e["record"])).encode()).hexdigest()
        prev = e["mac"]
    _write(c, [json.dumps(e) for e in entries])
    head = json.loads(c.head_path.read_text())
    head["mac"] = prev
    c.head_path.write_text(json.dumps(head))
    kinds = [(p.line, p.kind) for p in c.verify()]
    assert (2, "altered") in kinds and (0, "altered") in kinds  # records and head
    assert "content does not match its MAC" in _cli(c, capsys, monkeypatch)


def test_head_cut_with_a_matching_anchor(chain, capsys, monkeypatch):
    lines = _lines(chain)
    cut = json.loads(lines[2])
    chain.anchor_path.write_text(json.dumps({"seq": cut["seq"], "mac": cut["mac"], "kid": "k1"}))
    _write(chain, lines[3:])
    assert "altered" in _kinds(chain)
    assert "anchor does not verify" in _cli(chain, capsys, monkeypatch)


def test_plaintext_record_appended_to_an_encrypted_log(tmp_path, capsys, monkeypatch):
    ring = Keyring({"k1": os.urandom(32)}, "k1")
    c = AuditChain(tmp_path / "a.jsonl", keyring=ring)
    _fill(c)
    plain = AuditChain(tmp_path / "b.jsonl")  # a validly MACed plaintext entry, other key
    plain.append({"actor": "attacker", "operation": "skills.install", "result": "ok"})
    last = json.loads(_lines(c)[-1])
    forged = json.loads(plain.path.read_text())
    forged.update(seq=last["seq"] + 1, prev=last["mac"])
    c.path.write_text(c.path.read_text() + json.dumps(forged) + "\n")
    kinds = _kinds(c)
    assert "plaintext" in kinds
    assert "plaintext record in an encrypted log" in _cli(c, capsys, monkeypatch)
    with pytest.raises(ValueError, match="plaintext record in an encrypted log"):
        list(c.records())


def test_retention_and_rotation_still_verify(tmp_path):
    ring = Keyring({"k1": os.urandom(32)}, "k1")
    c = AuditChain(tmp_path / "a.jsonl", keyring=ring, retention_days=1)
    _fill(c, 3, start=NOW - 3 * DAY_MS)
    _fill(c, 2, start=NOW - 1000)
    assert c.enforce_retention(now_ms=NOW) == 3 and c.verify() == []
    new = ring.rotated("k2")
    assert c.reencrypt(new) == 2
    only_new = Keyring({"k2": new._keys["k2"]}, "k2")
    assert verify_chain(c.path, only_new) == []


def test_store_copy_is_chained(tmp_path):
    c = AuditChain(tmp_path / "a.jsonl")
    entries = c.append_many([{"actor": f"a{i}", "result": "ok"} for i in range(4)])
    copy = [
        {
            **e["record"],
            "chain": "messages",
            "seq": e["seq"],
            "prev": e["prev"],
            "mac": e["mac"],
            "kid": e["kid"],
        }
        for e in entries
    ]
    assert verify_copy(copy, c, "messages") == []
    altered = [dict(r) for r in copy]
    altered[1]["result"] = "denied"
    assert [p.kind for p in verify_copy(altered, c, "messages")] == ["altered"]
    assert [p.kind for p in verify_copy(copy[:1] + copy[2:], c, "messages")] == ["removed"]
    assert [p.kind for p in verify_copy(copy[:-1], c, "messages")] == ["truncated"]
