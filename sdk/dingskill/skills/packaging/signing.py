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
    "load_private_key",
    "public_key_b64",
    "key_id",
    "sign_record",
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


def load_private_key(path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"{path}: not an ed25519 private key in PEM ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an ed25519 private key")
    return key


def sign_record(record: bytes, private: Ed25519PrivateKey) -> bytes:
    body = {
        "algorithm": "ed25519",
        "key_id": key_id(_raw(private.public_key())),
        "signature": base64.b64encode(private.sign(record)).decode(),
    }
    return (json.dumps(body, sort_keys=True, indent=2) + "\n").encode()


def verify_signature(record: bytes, signature: bytes, trusted: dict[str, str]) -> str:
    """Check SIGNATURE against the operator's trusted keys; returns the key id."""
    try:
        body = json.loads(signature)
        kid, sig = body["key_id"], base64.b64decode(body["signature"], validate=True)
        if body.get("algorithm") != "ed25519":
            raise SignatureError(
                f"SIGNATURE: algorithm {body.get('algorithm')!r} is not supported (ed25519 only)"
            )
    except SignatureError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"SIGNATURE: malformed ({exc})") from exc
    if kid not in trusted:
        raise SignatureError(f"SIGNATURE: key {kid} is not trusted (dingskill keys trust PUBKEY)")
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(trusted[kid]))
        pub.verify(sig, record)
    except InvalidSignature as exc:
        raise SignatureError(
            f"SIGNATURE: does not verify with trusted key {kid} (package altered?)"
        ) from exc
    except ValueError as exc:
        raise SignatureError(f"trusted key {kid} in config.json is malformed") from exc
    return kid
