"""ed25519 keys and package signatures (over the RECORD bytes)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import SignatureError

__all__ = [
    "generate_keys",
    "generate_token_key",
    "load_private_key",
    "public_key_b64",
    "key_id",
    "FileSigner",
    "load_signer",
    "sign_bytes",
    "sign_record",
    "verify_body",
    "verify_signature",
]


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _raw(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(private: Ed25519PrivateKey) -> str:
    return base64.b64encode(_raw(private.public_key())).decode()


def generate_keys(out_dir, name: str = "dingskill") -> tuple[Path, Path, str]:
    """Write ``<name>.key`` (PEM, 0600) and ``<name>.pub`` (base64 raw); return paths, key id."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path, pub_path = out / f"{name}.key", out / f"{name}.pub"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_text(public_key_b64(private) + "\n")
    return key_path, pub_path, key_id(_raw(private.public_key()))


def generate_token_key(label: str, out_dir, name: str = "dingskill") -> tuple[Path, str]:
    """Create an ed25519 key in the configured PKCS#11 token; write ``<name>.pub`` (base64
    raw, as :func:`generate_keys` does) and return its path and the key id."""
    from ...security.hsm import HsmConfig, HsmError, generate_signing_key

    try:
        raw = generate_signing_key(HsmConfig.from_env(), label)
    except HsmError as exc:
        raise SignatureError(str(exc)) from exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pub_path = out / f"{name}.pub"
    pub_path.write_text(base64.b64encode(raw).decode() + "\n")
    return pub_path, key_id(raw)


def load_private_key(path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"{path}: not an ed25519 private key in PEM ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an ed25519 private key")
    return key


class FileSigner:
    """An ed25519 private key read from a PEM file."""

    algorithm = "ed25519"

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_raw = _raw(private.public_key())

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)


def load_signer(spec):
    """A signer from ``spec``: a PEM key file, or ``pkcs11:LABEL`` for an ed25519 key held in
    the PKCS#11 token named by ``DINGSKILL_HSM_MODULE`` / ``_TOKEN`` / ``_PIN``."""
    if hasattr(spec, "sign") and hasattr(spec, "public_raw"):
        return spec
    if isinstance(spec, Ed25519PrivateKey):
        return FileSigner(spec)
    text = str(spec)
    if text.startswith("pkcs11:"):
        from ...security.hsm import HsmConfig, HsmError, HsmSigner

        label = text[len("pkcs11:") :]
        if not label:
            raise SignatureError("pkcs11:LABEL: the key label is empty")
        try:
            return HsmSigner(HsmConfig.from_env(), label)
        except HsmError as exc:
            raise SignatureError(f"{text}: {exc}") from exc
    return FileSigner(load_private_key(text))


def sign_bytes(data: bytes, signer) -> dict:
    """The signature body (algorithm, key id, base64 signature) of ``data``."""
    signer = load_signer(signer)
    try:
        sig = signer.sign(data)
    except Exception as exc:  # noqa: BLE001 - a token error names itself
        raise SignatureError(f"signing failed: {exc}") from exc
    return {
        "algorithm": signer.algorithm,
        "key_id": key_id(signer.public_raw),
        "signature": base64.b64encode(sig).decode(),
    }


def sign_record(record: bytes, private) -> bytes:
    """SIGNATURE bytes for ``record``; ``private``: a key, a signer or a key spec."""
    body = sign_bytes(record, private)
    return (json.dumps(body, sort_keys=True, indent=2) + "\n").encode()


def verify_signature(record: bytes, signature: bytes, trusted: dict[str, str]) -> str:
    """Check SIGNATURE against the operator's trusted keys; returns the key id."""
    try:
        body = json.loads(signature)
    except ValueError as exc:
        raise SignatureError(f"SIGNATURE: malformed ({exc})") from exc
    return verify_body(record, body, trusted, "SIGNATURE")


def verify_body(data: bytes, body: dict, trusted: dict[str, str], where: str) -> str:
    """Check a signature body over ``data`` against trusted keys; returns the key id."""
    try:
        kid, sig = body["key_id"], base64.b64decode(body["signature"], validate=True)
        if not isinstance(kid, str) or not 0 < len(kid) <= 64:
            raise SignatureError(
                f"{where}: malformed (key_id must be a short string, got {type(kid).__name__})"
            )
        if body.get("algorithm") != "ed25519":
            raise SignatureError(
                f"{where}: algorithm {body.get('algorithm')!r} is not supported (ed25519 only)"
            )
    except SignatureError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SignatureError(f"{where}: malformed ({type(exc).__name__}: {exc})") from exc
    if kid not in trusted:
        raise SignatureError(f"{where}: key {kid} is not trusted (dingskill keys trust PUBKEY)")
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(trusted[kid]))
        pub.verify(sig, data)
    except InvalidSignature as exc:
        raise SignatureError(
            f"{where}: does not verify with trusted key {kid} (package altered?)"
        ) from exc
    except ValueError as exc:
        raise SignatureError(f"trusted key {kid} in config.json is malformed") from exc
    return kid
