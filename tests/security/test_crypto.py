"""AES-256-GCM keyring: sealing, key ids, rotation and refusals."""

from __future__ import annotations

import base64
import os

import pytest
from dingskill.security.crypto import CryptoError, Keyring


def _ring(kid: str = "k1") -> Keyring:
    return Keyring({kid: os.urandom(32)}, kid)


def test_round_trip_chinese_text_and_ciphertext_hides_plaintext():
    ring = _ring()
    text = "我想请三天年假，下周一开始"
    blob = ring.encrypt(text.encode(), b"ctx:c1")
    assert text.encode() not in blob and "年假".encode() not in blob
    assert Keyring.is_sealed(blob) and Keyring.key_id_of(blob) == "k1"
    assert ring.decrypt(blob, b"ctx:c1").decode() == text


def test_nonce_is_fresh_each_time():
    ring = _ring()
    assert ring.encrypt(b"same") != ring.encrypt(b"same")


def test_altered_ciphertext_and_wrong_context_are_refused():
    ring = _ring()
    blob = bytearray(ring.encrypt(b"payslip", b"ctx:a"))
    with pytest.raises(CryptoError, match="wrong key/context"):
        ring.decrypt(bytes(blob), b"ctx:b")
    blob[-1] ^= 1
    with pytest.raises(CryptoError, match="altered"):
        ring.decrypt(bytes(blob), b"ctx:a")


def test_rotation_reads_old_values_and_reencrypts_to_new_key():
    old = _ring("2026-01")
    blob = old.encrypt(b"hello")
    new = old.rotated("2026-06")
    assert new.active == "2026-06" and new.key_ids == ["2026-01", "2026-06"]
    assert new.decrypt(blob) == b"hello"
    moved = new.reencrypt(blob)
    assert Keyring.key_id_of(moved) == "2026-06"
    only_new = Keyring({"2026-06": new._keys["2026-06"]}, "2026-06")
    assert only_new.decrypt(moved) == b"hello"
    with pytest.raises(CryptoError, match="unknown key id '2026-01'"):
        only_new.decrypt(blob)


def test_from_env_parses_and_names_bad_items():
    key = base64.b64encode(os.urandom(32)).decode()
    ring = Keyring.from_env({"DINGSKILL_DATA_KEYS": f"new:{key},old:{key}"})
    assert ring.active == "new" and ring.key_ids == ["new", "old"]
    assert Keyring.from_env({}) is None
    with pytest.raises(CryptoError, match="item 1"):
        Keyring.from_env({"DINGSKILL_DATA_KEYS": "nokey"})
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(CryptoError, match="32 bytes, got 16"):
        Keyring.from_env({"DINGSKILL_DATA_KEYS": f"k:{short}"})


def test_key_file_round_trip_and_permissions(tmp_path):
    ring = _ring()
    path = ring.to_file(tmp_path / "keys.json")
    assert (path.stat().st_mode & 0o777) == 0o600
    again = Keyring.from_file(path)
    assert again.decrypt(ring.encrypt(b"x")) == b"x"
    path.chmod(0o644)
    with pytest.raises(CryptoError, match="chmod 600"):
        Keyring.from_file(path)


def test_repr_never_shows_key_material():
    key = os.urandom(32)
    ring = Keyring({"k": key}, "k")
    assert base64.b64encode(key).decode() not in repr(ring)
    assert key.hex() not in repr(ring)
