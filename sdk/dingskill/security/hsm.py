"""Keys held in a PKCS#11 token (an HSM, or SoftHSM2 for development and tests).

Two kinds of key live in the token and never leave it:

- an **ed25519 signing key** (``CKK_EC_EDWARDS``, mechanism ``CKM_EDDSA``): package and market
  index signatures made with it are byte-for-byte the ``ed25519`` signatures file keys make,
  so verifiers need nothing new;
- an **AES-256 key-encryption key**: the runtime's at-rest data keys are stored *wrapped* by it
  (AES-GCM inside the token) and unwrapped into memory at start-up (envelope encryption), see
  :func:`wrap_keyring` / :func:`unwrap_keyring`.

The token is named by its module path, its label and a PIN read from the environment
(``DINGSKILL_HSM_MODULE``, ``DINGSKILL_HSM_TOKEN``, ``DINGSKILL_HSM_PIN``); the PIN is never
written to configuration files or logs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HsmConfig",
    "HsmError",
    "HsmSigner",
    "default_module",
    "generate_data_kek",
    "generate_signing_key",
    "unwrap_keyring",
    "wrap_keyring",
]

ENV_MODULE = "DINGSKILL_HSM_MODULE"
ENV_TOKEN = "DINGSKILL_HSM_TOKEN"
ENV_PIN = "DINGSKILL_HSM_PIN"
ED25519_OID = "1.3.101.112"
MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
WRAPPED_FORMAT = "dingskill-wrapped-keyring-1"


class HsmError(RuntimeError):
    """The token, a key or the PIN is missing, or the token refused an operation."""


def default_module() -> str | None:
    """The first SoftHSM2 module found on this machine (Debian/Ubuntu paths), else None."""
    return next((p for p in MODULE_CANDIDATES if Path(p).is_file()), None)


@dataclass(frozen=True)
class HsmConfig:
    """Where the token is: PKCS#11 module path, token label, and the PIN's environment variable."""

    module: str
    token: str
    pin_env: str = ENV_PIN

    @classmethod
    def from_env(cls, environ: dict | None = None) -> HsmConfig:
        env = os.environ if environ is None else environ
        module = env.get(ENV_MODULE) or default_module()
        token = env.get(ENV_TOKEN)
        if not module:
            raise HsmError(f"no PKCS#11 module: set {ENV_MODULE} (e.g. the SoftHSM2 library path)")
        if not token:
            raise HsmError(f"no token label: set {ENV_TOKEN}")
        return cls(module, token)

    def pin(self) -> str:
        pin = os.environ.get(self.pin_env)
        if not pin:
            raise HsmError(f"the token PIN is read from ${self.pin_env}, which is not set")
        return pin

    @contextlib.contextmanager
    def session(self, rw: bool = False):
        """An open, logged-in session (closed on exit)."""
        try:
            import pkcs11
            from pkcs11.exceptions import PKCS11Error
        except ImportError as exc:  # pragma: no cover - the 'hsm' extra is not installed
            raise HsmError("PKCS#11 keys need python-pkcs11: pip install 'dingskill[hsm]'") from exc
        if not Path(self.module).is_file():
            raise HsmError(f"PKCS#11 module {self.module} not found")
        try:
            lib = pkcs11.lib(self.module)
            token = lib.get_token(token_label=self.token)
        except pkcs11.NoSuchToken as exc:
            raise HsmError(f"no token labelled {self.token!r} in {self.module}") from exc
        except PKCS11Error as exc:
            raise HsmError(f"{self.module}: {type(exc).__name__}") from exc
        try:
            sess = token.open(user_pin=self.pin(), rw=rw)
        except pkcs11.PinIncorrect as exc:
            raise HsmError(f"token {self.token!r}: PIN from ${self.pin_env} is wrong") from exc
        except PKCS11Error as exc:
            raise HsmError(f"token {self.token!r}: cannot log in ({type(exc).__name__})") from exc
        with sess:
            try:
                yield sess
            except PKCS11Error as exc:
                raise HsmError(f"token {self.token!r} refused: {type(exc).__name__}") from exc


def _find(session, label: str, object_class, key_type=None):
    import pkcs11

    try:
        return session.get_key(object_class=object_class, key_type=key_type, label=label)
    except pkcs11.NoSuchKey as exc:
        raise HsmError(f"no {object_class.name.lower()} labelled {label!r} in the token") from exc
    except pkcs11.MultipleObjectsReturned as exc:
        raise HsmError(
            f"several keys labelled {label!r} in the token; labels must be unique"
        ) from exc


def _ed25519_raw(public) -> bytes:
    from pkcs11 import Attribute

    point = bytes(public[Attribute.EC_POINT])
    # CKA_EC_POINT is a DER OCTET STRING (04 20 <32 bytes>) in SoftHSM2; raw 32 bytes elsewhere
    if len(point) == 34 and point[:2] == b"\x04\x20":
        return point[2:]
    if len(point) == 32:
        return point
    raise HsmError(f"unexpected ed25519 public key encoding ({len(point)} bytes)")


def generate_signing_key(cfg: HsmConfig, label: str) -> bytes:
    """Create an ed25519 key pair in the token (private key not extractable); returns the raw
    32-byte public key."""
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    with cfg.session(rw=True) as s:
        if list(s.get_objects({Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
            raise HsmError(f"a key labelled {label!r} already exists in token {cfg.token!r}")
        params = s.create_domain_parameters(
            KeyType.EC_EDWARDS,
            {Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID)},
            local=True,
        )
        pub, _priv = params.generate_keypair(
            store=True,
            label=label,
            mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
            private_template={Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True},
        )
        return _ed25519_raw(pub)


class HsmSigner:
    """Signs with an ed25519 private key that stays in the token."""

    algorithm = "ed25519"

    def __init__(self, cfg: HsmConfig, label: str) -> None:
        from pkcs11 import KeyType, ObjectClass

        self.cfg, self.label = cfg, label
        with cfg.session() as s:
            pub = _find(s, label, ObjectClass.PUBLIC_KEY, KeyType.EC_EDWARDS)
            self.public_raw = _ed25519_raw(pub)

    def sign(self, data: bytes) -> bytes:
        from pkcs11 import KeyType, Mechanism, ObjectClass

        with self.cfg.session() as s:
            priv = _find(s, self.label, ObjectClass.PRIVATE_KEY, KeyType.EC_EDWARDS)
            return bytes(priv.sign(data, mechanism=Mechanism.EDDSA))

    def __repr__(self) -> str:
        return f"HsmSigner(token={self.cfg.token!r}, label={self.label!r})"


def generate_data_kek(cfg: HsmConfig, label: str) -> None:
    """Create an AES-256 key-encryption key in the token (sensitive, not extractable)."""
    from pkcs11 import Attribute, KeyType, ObjectClass

    with cfg.session(rw=True) as s:
        if list(s.get_objects({Attribute.LABEL: label, Attribute.CLASS: ObjectClass.SECRET_KEY})):
            raise HsmError(f"a key labelled {label!r} already exists in token {cfg.token!r}")
        s.generate_key(
            KeyType.AES,
            256,
            label=label,
            store=True,
            template={Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True},
        )


def _gcm(session, label: str, data: bytes, nonce: bytes, aad: bytes, encrypt: bool) -> bytes:
    from pkcs11 import KeyType, Mechanism, ObjectClass
    from pkcs11.exceptions import PKCS11Error
    from pkcs11.mechanisms import GCMParams

    kek = _find(session, label, ObjectClass.SECRET_KEY, KeyType.AES)
    op = kek.encrypt if encrypt else kek.decrypt
    try:
        return bytes(
            op(data, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad, 128))
        )
    except PKCS11Error as exc:  # SoftHSM2 reports a failed GCM tag as a general error
        raise HsmError(f"AES-GCM with {label!r} failed ({type(exc).__name__})") from exc


def wrap_keyring(keyring, cfg: HsmConfig, kek_label: str, path) -> Path:
    """Write ``keyring``'s data keys to ``path`` encrypted by the token's key ``kek_label``
    (file mode 0600; useless without the token and its PIN)."""
    out = {"format": WRAPPED_FORMAT, "token": cfg.token, "kek": kek_label, "active": keyring.active}
    wrapped = {}
    with cfg.session() as s:
        for kid in keyring.key_ids:
            nonce = secrets.token_bytes(12)
            ct = _gcm(s, kek_label, keyring._keys[kid], nonce, kid.encode(), True)
            wrapped[kid] = base64.b64encode(nonce + ct).decode()
    out["keys"] = wrapped
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
    os.replace(tmp, p)
    return p


def unwrap_keyring(data: dict, cfg: HsmConfig | None = None, where: str = "key file"):
    """The :class:`~dingskill.security.crypto.Keyring` of a wrapped key file's content."""
    from .crypto import CryptoError, Keyring

    if data.get("format") != WRAPPED_FORMAT:
        raise CryptoError(f"{where}: not a wrapped keyring (format {data.get('format')!r})")
    cfg = cfg or HsmConfig.from_env()
    if data.get("token") and data["token"] != cfg.token:
        raise CryptoError(
            f"{where}: wrapped by token {data['token']!r}, but ${ENV_TOKEN} names {cfg.token!r}"
        )
    keys = {}
    with cfg.session() as s:
        for kid, b64 in dict(data.get("keys") or {}).items():
            blob = base64.b64decode(b64)
            try:
                keys[kid] = _gcm(s, data["kek"], blob[12:], blob[:12], kid.encode(), False)
            except HsmError as exc:
                raise CryptoError(f"{where}: key {kid!r} does not unwrap ({exc})") from exc
    return Keyring(keys, data.get("active"))
