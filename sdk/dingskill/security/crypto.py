"""AES-256-GCM encryption at rest with key ids, so keys can rotate.

A sealed value is ``b"DSE1" | len(key_id) | key_id | nonce(12) | ciphertext+tag``. The key id
travels with the value, so a keyring holding the old and the new key reads both, and
:meth:`Keyring.reencrypt` moves a value to the active key.

Keys come from the environment (``DINGSKILL_DATA_KEYS="kid1:<base64 32 bytes>,kid0:..."``,
the first is active) or from a key file (JSON ``{"active": kid, "keys": {kid: base64}}``,
mode 0600), see :meth:`Keyring.from_env` and :meth:`Keyring.from_file`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["MAGIC", "CryptoError", "Keyring"]

MAGIC = b"DSE1"
ENV_KEYS = "DINGSKILL_DATA_KEYS"
ENV_KEY_FILE = "DINGSKILL_KEY_FILE"


class CryptoError(ValueError):
    """A key is missing or malformed, or a sealed value does not decrypt."""


def _decode_key(kid: str, value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"key {kid!r}: not valid base64") from exc
    if len(key) != 32:
        raise CryptoError(f"key {kid!r}: AES-256 needs 32 bytes, got {len(key)}")
    return key


class Keyring:
    """Named AES-256 keys; one of them is active for new values."""

    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        if not keys:
            raise CryptoError("a keyring needs at least one key")
        if active not in keys:
            raise CryptoError(f"active key {active!r} is not in the keyring")
        for kid, key in keys.items():
            if not kid or len(kid.encode()) > 64 or ":" in kid or "," in kid:
                raise CryptoError(f"key id {kid!r}: 1-64 bytes, no ':' or ','")
            if len(key) != 32:
                raise CryptoError(f"key {kid!r}: AES-256 needs 32 bytes, got {len(key)}")
        self._keys = dict(keys)
        self.active = active

    def __repr__(self) -> str:  # never shows key material
        return f"Keyring(active={self.active!r}, key_ids={sorted(self._keys)!r})"

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    @staticmethod
    def generate_key() -> str:
        """A fresh random 32-byte key, base64-encoded."""
        return base64.b64encode(secrets.token_bytes(32)).decode()

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Keyring | None:
        """The keyring named by ``DINGSKILL_DATA_KEYS`` or ``DINGSKILL_KEY_FILE``, else None."""
        env = os.environ if environ is None else environ
        spec = env.get(ENV_KEYS, "").strip()
        if spec:
            keys: dict[str, bytes] = {}
            order: list[str] = []
            for i, item in enumerate(spec.split(",")):
                kid, sep, value = item.strip().partition(":")
                if not sep:
                    raise CryptoError(f"{ENV_KEYS} item {i + 1}: expected 'key_id:base64key'")
                keys[kid] = _decode_key(kid, value)
                order.append(kid)
            return cls(keys, order[0])
        path = env.get(ENV_KEY_FILE, "").strip()
        if path:
            return cls.from_file(path)
        return None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Keyring:
        """Read a key file; refuses files readable by group or others."""
        p = Path(path)
        try:
            mode = p.stat().st_mode
        except FileNotFoundError as exc:
            raise CryptoError(f"{p}: key file not found") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CryptoError(f"{p}: key file must not be readable by others (chmod 600)")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CryptoError(f"{p}: not a JSON key file: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
            raise CryptoError(f"{p}: field 'keys' must be an object of key_id -> base64 key")
        if "format" in data:  # data keys wrapped by a key in a PKCS#11 token
            from .hsm import unwrap_keyring

            return unwrap_keyring(data, where=str(p))
        keys = {str(k): _decode_key(str(k), str(v)) for k, v in data["keys"].items()}
        active = data.get("active")
        if not isinstance(active, str):
            raise CryptoError(f"{p}: field 'active' must name one of the keys")
        return cls(keys, active)

    def to_file(self, path: str | os.PathLike) -> Path:
        """Write the keyring as a 0600 JSON key file (atomically)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "active": self.active,
            "keys": {k: base64.b64encode(v).decode() for k, v in sorted(self._keys.items())},
        }
        tmp = p.with_name(p.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=2)
        os.replace(tmp, p)
        return p

    def rotated(self, new_id: str | None = None) -> Keyring:
        """A keyring with a fresh active key; the old keys stay for reading."""
        kid = new_id or f"k{len(self._keys) + 1}-{secrets.token_hex(3)}"
        if kid in self._keys:
            raise CryptoError(f"key id {kid!r} already exists")
        keys = dict(self._keys)
        keys[kid] = base64.b64decode(self.generate_key())
        return Keyring(keys, kid)

    def has_key(self, kid: str) -> bool:
        return kid in self._keys

    def derive(self, kid: str, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (e.g. the audit chain's MAC) derived from key ``kid``
        with HKDF-SHA256, so one data key never serves two algorithms."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        if kid not in self._keys:
            raise CryptoError(f"no key {kid!r} in the keyring")
        return HKDF(hashes.SHA256(), 32, salt=None, info=purpose.encode()).derive(self._keys[kid])

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Seal ``plaintext`` with the active key (``aad`` binds it to its place)."""
        kid = self.active.encode()
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._keys[self.active]).encrypt(nonce, plaintext, aad)
        return MAGIC + bytes([len(kid)]) + kid + nonce + sealed

    @staticmethod
    def is_sealed(blob: bytes) -> bool:
        return isinstance(blob, bytes | bytearray) and bytes(blob[:4]) == MAGIC

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        if not Keyring.is_sealed(blob) or len(blob) < 5:
            raise CryptoError("not an encrypted value")
        n = blob[4]
        return bytes(blob[5 : 5 + n]).decode()

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Open a sealed value; raises CryptoError if the key is unknown or data altered."""
        kid = self.key_id_of(blob)
        key = self._keys.get(kid)
        if key is None:
            raise CryptoError(f"value sealed with unknown key id {kid!r}")
        start = 5 + len(kid.encode())
        nonce, sealed = blob[start : start + 12], blob[start + 12 :]
        try:
            return AESGCM(key).decrypt(bytes(nonce), bytes(sealed), aad)
        except InvalidTag as exc:
            raise CryptoError("encrypted value was altered or the wrong key/context") from exc

    def reencrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Move a sealed value to the active key (unchanged if it already uses it)."""
        if self.key_id_of(blob) == self.active:
            return blob
        return self.encrypt(self.decrypt(blob, aad), aad)

    def encrypt_text(self, text: str, aad: str = "") -> str:
        """Seal a string into an ASCII token (base64 of the sealed bytes)."""
        return base64.b64encode(self.encrypt(text.encode(), aad.encode())).decode()

    def decrypt_text(self, token: str, aad: str = "") -> str:
        try:
            blob = base64.b64decode(token, validate=True)
        except (ValueError, TypeError) as exc:
            raise CryptoError("encrypted text is not valid base64") from exc
        return self.decrypt(blob, aad.encode()).decode()
