"""The audit log's fast paths write exactly what the plain code wrote: the redactor against
its reference definition, the keyed HMAC kept per key against a fresh one, the entry lines
built around the record's canonical JSON against the canonical JSON of the whole entry; a
chain written in many batches verifies and a tampered one does not."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re

import pytest
from dingskill.security.audit_chain import (
    AuditChain,
    _canonical,
    _entry_line,
    _mac,
    _mac_bytes,
    verify_chain,
)
from dingskill.security.crypto import Keyring
from dingskill.security.redact import MASK, Redactor

_SECRET_KEYS = re.compile(
    r"(secret|token|password|passwd|api[_-]?key|app[_-]?key|private|sign)", re.I
)


def _reference(secrets, value):
    """Redactor.data as it was first written (the definition the fast path must keep)."""
    ordered = sorted(secrets, key=len, reverse=True)

    def text(v):
        for s in ordered:
            v = v.replace(s, MASK)
        return v

    def data(v):
        if isinstance(v, dict):
            return {
                k: (MASK if isinstance(k, str) and _SECRET_KEYS.search(k) and x else data(x))
                for k, x in v.items()
            }
        if isinstance(v, list | tuple):
            return [data(x) for x in v]
        if isinstance(v, str):
            return text(v)
        return v

    return data(value)


class _Str(str):
    pass


SAMPLES = [
    {"actor": "u1", "result": "ok", "confidence": 0.5, "n": 3, "flag": True, "none": None},
    {"app_secret": "x", "api-key": "", "Token": 0, "password": None, "signature": [1, 2]},
    {"text": "hello sekret-1234 and sekret-1234567", "nested": {"a": ["sekret-1234", 1.5]}},
    {1: "sekret-1234", (1, 2): {"privateKey": "p"}, "t": ("sekret-1234", "x")},
    {"s": _Str("a sekret-1234 b"), "b": b"sekret-1234", "big": 10**30},
    ["sekret-1234", {"token": "t"}, "plain"],
    "sekret-1234567",
    _Str("sekret-1234"),
    42,
    None,
]


@pytest.mark.parametrize("secrets", [[], ["sekret-1234", "sekret-1234567", "abc"]])
def test_redactor_matches_its_reference(secrets):
    r = Redactor(secrets)
    for value in SAMPLES:
        for _ in range(2):  # the second time from the field-name cache
            got, want = r.data(value), _reference([s for s in secrets if len(s) >= 4], value)
            assert got == want and type(got) is type(want)


def test_redactor_secret_added_later_is_masked():
    r = Redactor()
    assert r.data({"m": "a sekret-1234"}) == {"m": "a sekret-1234"}
    r.add("sekret-1234")
    assert r.data({"m": "a sekret-1234"}) == {"m": "a ***"}


def test_redactor_leaves_the_truth_of_values_under_plain_keys_alone():
    class NoBool:
        def __bool__(self):
            raise AssertionError("evaluated")

    v = NoBool()
    assert Redactor(["sekret-1234"]).data({"x": v})["x"] is v


def test_kept_keyed_hmac_gives_the_mac_of_a_fresh_one():
    key = os.urandom(32)
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    for seq, rec in enumerate(SAMPLES[:3] + [{"text": '请假 ü \u2028 "q" \\'}], start=1):
        for sealed in (False, True):
            canonical = _canonical({str(k): v for k, v in rec.items()})
            got = _mac_bytes(keyed, seq, "ab" * 32, sealed, canonical)
            assert got == _mac(key, seq, "ab" * 32, sealed, {str(k): v for k, v in rec.items()})
    assert keyed.copy().hexdigest() == hmac.new(key, b"", hashlib.sha256).hexdigest()


@pytest.mark.parametrize("field", ["record", "sealed"])
def test_entry_line_is_the_canonical_json_of_the_entry(field):
    records = [
        {"text": '请假 ü \u2028 "q" \\ \n\t\x00', "n": 1.25, "l": [1, None, True], "z": {}},
        {"ts_ms": 1, "b": {"y": 1, "a": 2}},
    ]
    for seq, rec in enumerate(records, start=7):
        value = rec if field == "record" else "c2VhbGVk+/="
        body = _canonical(rec) if field == "record" else json.dumps(value).encode()
        for kid in ("audit-1", 'k\u00e9y"1'):
            entry = {"seq": seq, "prev": "0" * 64, "mac": "f" * 64, "kid": kid, field: value}
            got = _entry_line(seq, "0" * 64, "f" * 64, kid, field, body)
            assert got == _canonical(entry) + b"\n"


@pytest.mark.parametrize("sealed", [False, True])
def test_batched_chain_verifies_and_tampering_is_found(tmp_path, sealed):
    ring = Keyring({"k1": os.urandom(32)}, "k1") if sealed else None
    chain = AuditChain(tmp_path / "audit.jsonl", keyring=ring)
    n = 0
    for size in (1, 5, 40, 3):
        chain.append_many([{"actor": f"u{n + i}", "text": f"请假 {n + i}"} for i in range(size)])
        n += size
    assert verify_chain(chain.path, ring) == []
    recs = list(chain.records())
    assert [r["actor"] for r in recs] == [f"u{i}" for i in range(n)]
    assert all(isinstance(r["ts_ms"], int) for r in recs)
    lines = chain.path.read_text(encoding="utf-8").splitlines()
    assert all(_canonical(json.loads(ln)).decode() == ln for ln in lines)
    # a second writer object (another process) continues the chain
    AuditChain(chain.path, keyring=ring).append_many([{"actor": "other"}])
    chain.append_many([{"actor": "again"}])
    assert verify_chain(chain.path, ring) == []
    entry = json.loads(lines[10])
    if sealed:
        entry["sealed"] = ring.encrypt_text(json.dumps({"actor": "forged"}), aad="audit:11")
    else:
        entry["record"]["actor"] = "forged"
    lines[10] = json.dumps(entry)
    rest = chain.path.read_text(encoding="utf-8").splitlines()[len(lines) :]
    chain.path.write_text("".join(ln + "\n" for ln in lines + rest), encoding="utf-8")
    assert [(p.line, p.kind) for p in verify_chain(chain.path, ring)] == [(11, "altered")]


@pytest.mark.parametrize("sealed", [False, True])
def test_head_is_one_sector_overwritten_in_place(tmp_path, sealed):
    from dingskill.security.audit_chain import HEAD_SIZE

    ring = Keyring({"k1": os.urandom(32)}, "k1") if sealed else None
    chain = AuditChain(tmp_path / "audit.jsonl", keyring=ring)
    chain.append({"actor": "a"})
    ino = chain.head_path.stat().st_ino
    for i in range(3):
        chain.append_many([{"actor": f"b{i}"}, {"actor": f"c{i}"}])
    raw = chain.head_path.read_bytes()
    assert len(raw) == HEAD_SIZE and chain.head_path.stat().st_ino == ino
    head = json.loads(raw)
    assert head["seq"] == 7 and head["sealed"] is sealed
    assert not (tmp_path / "audit.jsonl.head.tmp").exists()
    assert verify_chain(chain.path, ring) == []
    # the last records cut: still found against the in-place head
    lines = chain.path.read_text(encoding="utf-8").splitlines(keepends=True)
    chain.path.write_text("".join(lines[:-2]), encoding="utf-8")
    assert [p.kind for p in verify_chain(chain.path, ring)] == ["truncated"]


def test_a_head_that_is_not_one_sector_is_rewritten_whole(tmp_path):
    chain = AuditChain(tmp_path / "audit.jsonl")
    chain.append({"actor": "a"})
    head = json.loads(chain.head_path.read_text())
    chain.head_path.write_text(json.dumps(head))  # an older writer's head: no padding
    chain.append({"actor": "b"})
    assert len(chain.head_path.read_bytes()) == 512 and verify_chain(chain.path) == []
    # a head that is a link to elsewhere is replaced, not written through
    target = tmp_path / "elsewhere"
    target.write_bytes(chain.head_path.read_bytes())
    chain.head_path.unlink()
    chain.head_path.symlink_to(target)
    chain.append({"actor": "c"})
    assert not chain.head_path.is_symlink() and json.loads(target.read_text())["seq"] == 2
    assert verify_chain(chain.path) == []


def test_a_forged_head_still_fails_and_a_head_read_mid_write_is_read_again(tmp_path, monkeypatch):
    chain = AuditChain(tmp_path / "audit.jsonl")
    for i in range(3):
        chain.append({"actor": f"u{i}"})
    good = chain.head_path.read_bytes()
    head = json.loads(good)
    # half the next head written over the last one: parses, but its MAC does not match
    torn = dict(head, seq=head["seq"] + 1)
    reads = iter([torn, good[:100].decode()])
    real = AuditChain._read_json

    def read_json(self, path):
        if path == chain.head_path:
            nxt = next(reads, None)
            if isinstance(nxt, dict):
                return nxt
            if isinstance(nxt, str):
                return json.loads(nxt)  # a cut read: does not parse
        return real(self, path)

    monkeypatch.setattr(AuditChain, "_read_json", read_json)
    assert verify_chain(chain.path) == []
    monkeypatch.undo()
    head["seq"] = 2  # forged: points back before the last record
    chain.head_path.write_text(json.dumps(head).ljust(511) + "\n")
    kinds = [(p.line, p.kind) for p in verify_chain(chain.path)]
    assert kinds == [(0, "altered"), (0, "truncated")]  # and taken as no head at all
