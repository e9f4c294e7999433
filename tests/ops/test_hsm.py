"""Keys in a PKCS#11 token (a real SoftHSM2 token, no fake): package signatures made inside
the token verify as ed25519; at-rest data keys wrapped by the token's AES key."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from dingskill.cli.main import main
from dingskill.security.crypto import CryptoError, Keyring
from dingskill.security.hsm import HsmConfig, HsmError, HsmSigner
from dingskill.skills.packaging import SignatureError, SkillHome

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def faq_src(tmp_path_factory):
    src = tmp_path_factory.mktemp("hsm-src")
    shutil.copytree(ROOT / "skills" / "faq-en", src / "skills" / "faq-en")
    (src / "datasets").symlink_to(ROOT / "datasets")
    return src / "skills" / "faq-en"


def test_package_signed_in_the_token_installs_with_its_public_key(
    hsm_env, faq_src, tmp_path, capsys
):
    assert (
        main(["keys", "generate", "--pkcs11", "pkg-sign", "-o", str(tmp_path), "--name", "t"]) == 0
    )
    pub = tmp_path / "t.pub"
    assert "created in the token" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.key"))  # the private key never leaves the token
    assert (
        main(["export", str(faq_src), "-o", str(tmp_path / "dist"), "--sign", "pkcs11:pkg-sign"])
        == 0
    )
    pkg = next((tmp_path / "dist").glob("*.skill"))
    home = SkillHome(tmp_path / "home")
    home.trust_key(pub.read_text())
    home.set_config(require_signature=True)
    info = home.install(pkg)
    assert info.signature.startswith("trusted:")
    # the same key again in the token is refused rather than shadowed
    assert main(["keys", "generate", "--pkcs11", "pkg-sign", "-o", str(tmp_path / "x")]) == 1
    assert "already exists" in capsys.readouterr().out


def test_token_errors_name_what_to_fix(hsm_env, monkeypatch):
    with pytest.raises(SignatureError, match="no public_key labelled 'nope'"):
        from dingskill.skills.packaging.signing import load_signer

        load_signer("pkcs11:nope")
    monkeypatch.setenv("DINGSKILL_HSM_PIN", "0000")
    with pytest.raises(HsmError, match="PIN from \\$DINGSKILL_HSM_PIN is wrong"):
        HsmSigner(HsmConfig.from_env(), "pkg-sign")
    monkeypatch.delenv("DINGSKILL_HSM_PIN")
    with pytest.raises(HsmError, match="DINGSKILL_HSM_PIN, which is not set"):
        HsmSigner(HsmConfig.from_env(), "pkg-sign")
    monkeypatch.setenv("DINGSKILL_HSM_TOKEN", "no-such-token")
    monkeypatch.setenv("DINGSKILL_HSM_PIN", "1")
    with pytest.raises(HsmError, match="no token labelled 'no-such-token'"):
        HsmSigner(HsmConfig.from_env(), "pkg-sign")


def test_data_keys_wrapped_by_the_token(hsm_env, tmp_path, monkeypatch, capsys):
    plain = tmp_path / "keys.json"
    ring = Keyring({"k1": os.urandom(32)}, "k1").rotated("k2")
    ring.to_file(plain)
    assert main(["keys", "hsm-kek", "data-kek"]) == 0
    wrapped = tmp_path / "wrapped.json"
    assert main(["keys", "wrap", str(plain), "--kek", "data-kek", "-o", str(wrapped)]) == 0
    body = json.loads(wrapped.read_text())
    assert body["format"] == "dingskill-wrapped-keyring-1" and set(body["keys"]) == {"k1", "k2"}
    for b64 in json.loads(plain.read_text())["keys"].values():
        assert b64 not in wrapped.read_text()  # no key material in the clear
    assert oct(wrapped.stat().st_mode & 0o777) == "0o600"
    sealed = ring.encrypt(b"staff-123", b"ctx")
    monkeypatch.setenv("DINGSKILL_KEY_FILE", str(wrapped))
    loaded = Keyring.from_env()
    assert loaded.active == "k2" and loaded.decrypt(sealed, b"ctx") == b"staff-123"
    # a wrapped file altered (or moved to another token's key) does not unwrap
    body["keys"]["k1"] = body["keys"]["k2"]
    wrapped.write_text(json.dumps(body))
    with pytest.raises(CryptoError, match="key 'k1' does not unwrap"):
        Keyring.from_file(wrapped)
    monkeypatch.setenv("DINGSKILL_HSM_TOKEN", "other")
    with pytest.raises(CryptoError, match="wrapped by token"):
        Keyring.from_file(wrapped)
