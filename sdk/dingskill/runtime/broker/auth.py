"""Who may put a message in front of a worker: message authentication between gateways and
workers, DLQ replay tokens, and the hosts a session webhook may point at.

- Every message a gateway publishes carries ``x-dingskill-key-id`` and
  ``x-dingskill-signature``: HMAC-SHA256, with a key only gateways and workers hold, over the
  body and the headers that decide how it is delivered (message id, channel). Keys rotate:
  the first key of ``broker.message_keys`` (or ``DINGSKILL_BROKER_KEYS``) signs, every listed
  key verifies (current + previous). Without configured keys, both sides derive one from the
  AppSecret, which only they hold (key id ``app``).
- A message is answered a second time (``x-dingskill-replayed``) only with a replay token
  minted by ``dingskill dlq replay``: an HMAC over the message id, the body digest, the
  minting time and a nonce; the worker accepts it once, within ``broker.replay_token_ttl_s``.
- A session webhook is called only when its origin (scheme, host, port) is on
  ``broker.session_webhook_hosts`` or is the configured platform endpoint's.

Nothing here trusts the broker: anything that can publish to a shard queue (another
application on the vhost, a leaked guest login) can forge headers and bodies, but not
these MACs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "HDR_KEY_ID",
    "HDR_SIGNATURE",
    "HDR_REPLAY_TOKEN",
    "MessageKeys",
    "BrokerKeyError",
    "WebhookHosts",
]

HDR_KEY_ID = "x-dingskill-key-id"
HDR_SIGNATURE = "x-dingskill-signature"
HDR_REPLAY_TOKEN = "x-dingskill-replay-token"

_MSG = b"dingskill-broker-message-v1"
_REPLAY = b"dingskill-dlq-replay-v1"
_DERIVE = b"dingskill broker message key v1"
_KID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class BrokerKeyError(ValueError):
    """No usable message key, or a badly formed one (the message names the field)."""


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _parse_keys(entries: list[str], where: str) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for n, entry in enumerate(entries):
        kid, sep, secret = str(entry).strip().partition(":")
        if not sep or not kid or not set(kid) <= _KID_CHARS:
            raise BrokerKeyError(
                f"{where}[{n}]: expected KEY_ID:SECRET (key id of letters, digits, '-', '_', "
                "'.'), e.g. k2026a:<32+ random characters>"
            )
        if len(secret) < 16:
            raise BrokerKeyError(f"{where}[{n}] ({kid}): the secret must be at least 16 characters")
        if any(k == kid for k, _ in out):
            raise BrokerKeyError(f"{where}[{n}]: key id {kid!r} is listed twice")
        out.append((kid, secret.encode()))
    return out


@dataclass(frozen=True)
class MessageKeys:
    """The keys of one deployment; ``keys[0]`` signs, all verify."""

    keys: tuple[tuple[str, bytes], ...]
    replay_ttl_s: float = 86400.0

    @classmethod
    def from_config(cls, config, environ: dict | None = None) -> MessageKeys:
        """From ``DINGSKILL_BROKER_KEYS`` (comma-separated ``id:secret``), else
        ``broker.message_keys``, else derived from the AppSecret; :class:`BrokerKeyError` when
        there is none of them."""
        env = os.environ if environ is None else environ
        broker = config["broker"]
        ttl = float(broker.get("replay_token_ttl_s", 86400.0))
        raw = env.get("DINGSKILL_BROKER_KEYS")
        if raw:
            keys = _parse_keys([p for p in raw.split(",") if p.strip()], "DINGSKILL_BROKER_KEYS")
        elif broker.get("message_keys"):
            keys = _parse_keys(list(broker["message_keys"]), "broker.message_keys")
        elif config.app_secret:
            keys = [("app", hmac.new(config.app_secret.encode(), _DERIVE, "sha256").digest())]
        else:
            keys = []
        if not keys:
            raise BrokerKeyError(
                "broker.message_keys: no key to authenticate broker messages; set "
                "DINGSKILL_BROKER_KEYS=ID:SECRET (the same on every gateway and worker) or "
                "the AppSecret (DINGSKILL_APP_SECRET)"
            )
        return cls(tuple(keys), ttl)

    @property
    def current(self) -> tuple[str, bytes]:
        return self.keys[0]

    def _key(self, kid: str) -> bytes | None:
        for k, secret in self.keys:
            if k == kid:
                return secret
        return None

    @staticmethod
    def _payload(body: bytes, message_id: str, channel: str, kid: str) -> bytes:
        return b"\n".join(
            [
                _MSG,
                kid.encode(),
                message_id.encode(),
                channel.encode(),
                hashlib.sha256(body).hexdigest().encode(),
            ]
        )

    def sign(self, body: bytes, message_id: str, channel: str) -> dict:
        """The headers that authenticate a message (add them to its other headers)."""
        kid, key = self.current
        mac = hmac.new(key, self._payload(body, message_id, channel, kid), "sha256").digest()
        return {HDR_KEY_ID: kid, HDR_SIGNATURE: base64.urlsafe_b64encode(mac).decode()}

    def verify(self, body: bytes, message_id, headers: dict) -> str | None:
        """None if the message was signed by a holder of one of our keys, else why not."""
        kid, sig = _text(headers.get(HDR_KEY_ID)), _text(headers.get(HDR_SIGNATURE))
        if not kid or not sig:
            return "unauthenticated: no signature (not published by a gateway)"
        key = self._key(kid)
        if key is None:
            return f"unauthenticated: unknown key id {kid[:40]!r} (rotated out, or forged)"
        channel = _text(headers.get("x-dingskill-channel")) or "stream"
        want = hmac.new(key, self._payload(body, _text(message_id), channel, kid), "sha256")
        try:
            got = base64.urlsafe_b64decode(sig.encode())
        except (ValueError, TypeError):
            got = b""
        if not hmac.compare_digest(want.digest(), got):
            return "tampered: the signature does not match the body and headers"
        return None

    # ------------------------------------------------------------------ replay tokens
    def _replay_mac(self, key: bytes, msg_id: str, body: bytes, minted: int, nonce: str) -> str:
        payload = b"\n".join(
            [
                _REPLAY,
                msg_id.encode(),
                hashlib.sha256(body).hexdigest().encode(),
                str(minted).encode(),
                nonce.encode(),
            ]
        )
        return base64.urlsafe_b64encode(hmac.new(key, payload, "sha256").digest()).decode()

    def mint_replay(self, message_id: str, body: bytes, now_ms: int | None = None) -> str:
        """A replay token for one dead letter: ``kid.minted_ms.nonce.mac``."""
        kid, key = self.current
        minted = int(time.time() * 1000) if now_ms is None else now_ms
        nonce = secrets.token_hex(8)
        return f"{kid}.{minted}.{nonce}.{self._replay_mac(key, message_id, body, minted, nonce)}"

    def check_replay(
        self, token, message_id, body: bytes, now_ms: int | None = None
    ) -> tuple[str | None, str]:
        """(why it is refused or None, its nonce: the worker accepts each nonce once)."""
        parts = _text(token).split(".")
        if len(parts) != 4 or not parts[1].isdigit():
            return "replay refused: no valid replay token (`dingskill dlq replay` mints one)", ""
        kid, minted_s, nonce, mac = parts
        key = self._key(kid)
        want = self._replay_mac(key or b"", _text(message_id), body, int(minted_s), nonce)
        if key is None or not hmac.compare_digest(want.encode(), mac.encode()):
            return "replay refused: the replay token does not match this message", ""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if now - int(minted_s) > self.replay_ttl_s * 1000 or int(minted_s) - now > 60_000:
            return "replay refused: the replay token expired (replay it again)", nonce
        return None, nonce


@dataclass(frozen=True)
class WebhookHosts:
    """Origins (scheme, host, port) a session webhook may point at."""

    origins: frozenset[tuple[str, str, int]]

    @staticmethod
    def _origin(text: str, default_scheme: str = "https") -> tuple[str, str, int] | None:
        text = text.strip()
        if "://" not in text:
            text = f"{default_scheme}://{text}"
        try:
            u = urlsplit(text)
            port = u.port
        except ValueError:
            return None
        if u.scheme not in ("http", "https") or not u.hostname:
            return None
        return (u.scheme, u.hostname.lower(), port or (443 if u.scheme == "https" else 80))

    @classmethod
    def from_config(cls, config) -> WebhookHosts:
        """``broker.session_webhook_hosts`` plus the configured platform endpoint(s)."""
        entries = list(config["broker"].get("session_webhook_hosts") or [])
        origins = set()
        for n, entry in enumerate(entries):
            o = cls._origin(str(entry))
            if o is None:
                raise BrokerKeyError(
                    f"broker.session_webhook_hosts[{n}]: {entry!r} is not a host, host:port "
                    "or http(s)://host[:port]"
                )
            origins.add(o)
        for endpoint in (
            config.get("channels.enterprise_chat.endpoint"),
            config.get("report.openapi_endpoint"),
        ):
            if endpoint:
                o = cls._origin(str(endpoint))
                if o is not None:
                    origins.add(o)
        return cls(frozenset(origins))

    def allows(self, url: str | None) -> bool:
        if not url:
            return True  # nothing to call
        o = self._origin(str(url), default_scheme="invalid")
        return o is not None and o in self.origins
