"""The MAC-chained audit log finds altered, removed and reordered records (the attacks on
the chain itself are in test_audit_tamper.py)."""

from __future__ import annotations

import json
import os

import pytest
from dingskill.security.audit_chain import DAY_MS, AuditChain, verify_chain
from dingskill.security.crypto import Keyring


def _fill(chain: AuditChain, n: int = 5, start_ms: int = 1_700_000_000_000) -> None:
    for i in range(n):
        chain.append(
            {
                "ts_ms": start_ms + i,
                "actor": f"staff:{i}",
                "object": "com.x.hr",
                "operation": "message",
                "result": "ok",
                "client_ip": "10.0.0.1",
                "text": f"请假 {i}",
            }
        )


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.fixture(params=["plain", "encrypted"])
def chain(request, tmp_path):
    ring = Keyring({"k1": os.urandom(32)}, "k1") if request.param == "encrypted" else None
    c = AuditChain(tmp_path / "audit.jsonl", keyring=ring)
    _fill(c)
    return c


def test_intact_chain_verifies_and_reads_back(chain):
    assert chain.verify() == []
    records = list(chain.records())
    assert [r["actor"] for r in records] == [f"staff:{i}" for i in range(5)]
    assert records[0]["text"] == "请假 0"


def test_encrypted_chain_holds_no_plaintext(tmp_path):
    ring = Keyring({"k1": os.urandom(32)}, "k1")
    c = AuditChain(tmp_path / "a.jsonl", keyring=ring)
    _fill(c)
    raw = (tmp_path / "a.jsonl").read_bytes()
    assert "请假".encode() not in raw and b"staff:1" not in raw and b"10.0.0.1" not in raw


def test_altered_record_is_found(chain):
    lines = _lines(chain.path)
    entry = json.loads(lines[2])
    if "record" in entry:
        entry["record"]["result"] = "denied"
    else:  # flip one byte of the sealed value
        sealed = bytearray(entry["sealed"].encode())
        sealed[10] = ord("A") if sealed[10] != ord("A") else ord("B")
        entry["sealed"] = sealed.decode()
    lines[2] = json.dumps(entry)
    _write(chain.path, lines)
    kinds = {(p.line, p.kind) for p in chain.verify()}
    assert (3, "altered") in kinds or (3, "undecryptable") in kinds


def test_removed_record_is_found(chain):
    lines = _lines(chain.path)
    del lines[1]
    _write(chain.path, lines)
    problems = chain.verify()
    assert [(p.line, p.kind) for p in problems] == [(2, "removed")]


def test_reordered_records_are_found(chain):
    lines = _lines(chain.path)
    lines[1], lines[2] = lines[2], lines[1]
    _write(chain.path, lines)
    kinds = [p.kind for p in chain.verify()]
    assert "reordered" in kinds


def test_retention_drops_old_records_and_chain_still_verifies(tmp_path):
    now = 1_800_000_000_000
    c = AuditChain(tmp_path / "a.jsonl", retention_days=180)
    _fill(c, 3, start_ms=now - 200 * DAY_MS)
    _fill(c, 2, start_ms=now - 10 * DAY_MS)
    assert c.enforce_retention(now_ms=now) == 3
    assert len(list(c.records())) == 2
    assert c.verify() == []
    c.append({"ts_ms": now, "actor": "op", "operation": "install", "result": "ok"})
    assert c.verify() == [] and [r["ts_ms"] for r in c.records()][-1] == now
    with pytest.raises(ValueError, match="retention_days"):
        AuditChain(tmp_path / "b.jsonl", retention_days=0)


def test_reencrypt_after_rotation_keeps_chain(tmp_path):
    ring = Keyring({"k1": os.urandom(32)}, "k1")
    c = AuditChain(tmp_path / "a.jsonl", keyring=ring)
    _fill(c)
    new = ring.rotated("k2")
    assert c.reencrypt(new) == 5
    for line in _lines(c.path):
        assert Keyring.key_id_of(__import__("base64").b64decode(json.loads(line)["sealed"])) == "k2"
    assert verify_chain(c.path, Keyring({"k2": new._keys["k2"]}, "k2")) == []


def test_two_writers_take_turns_on_one_chain(tmp_path):
    """Two chain objects on one file (as two worker processes of one `dingskill run`): each
    append after the other's finds the tail by reading backwards, past records longer than
    the read block, and the chain stays whole."""
    from dingskill.security.audit_chain import _last_line

    path = tmp_path / "messages.jsonl"
    a, b = AuditChain(path), AuditChain(path)
    for n in range(30):
        (a if n % 2 else b).append({"kind": "message", "n": n, "pad": "x" * (n * 5000)})
    assert [r["n"] for r in AuditChain(path).records()] == list(range(30))
    assert AuditChain(path).verify() == []
    with path.open("rb") as fh:
        assert _last_line(fh, block=100).endswith(b"}")
        fh.seek(0)
        assert _last_line(fh) == path.read_bytes().splitlines()[-1]
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with empty.open("rb") as fh:
        assert _last_line(fh) == b""
