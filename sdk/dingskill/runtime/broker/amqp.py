"""Connection and topology: the names of every exchange and queue, declared the same way by
each service (declaring is idempotent), and the one-line error of an unreachable broker.

Topology for ``broker.queue = Q`` and ``broker.shards = S``:

- exchange ``Q`` (direct): routing key = shard number; queues ``Q.0`` .. ``Q.{S-1}`` (quorum,
  single active consumer: one worker at a time takes a shard, the others stand by), so the
  messages of one conversation (hashed to one shard) are handled in order;
- retry exchanges ``Q.retry.K`` (fanout) -> queues ``Q.retry.K`` with a fixed TTL each
  (back-off levels ``retry_delay_s * 2**K`` up to ``retry_max_delay_s``), dead-lettered back
  to exchange ``Q`` with the message's own routing key (its shard);
- ``Q.dlq``: messages that failed ``max_attempts`` times (or cannot be parsed);
- ``Q.audit``: audit records for the single ``audit-writer`` (single active consumer);
- ``Q.workers``: never receives messages; every worker consumes it so its consumer count is
  the number of live workers (the broker keeps it, not a heartbeat of ours)."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import zlib
from dataclasses import dataclass

from ..config import redact_password

__all__ = [
    "BrokerUnavailable",
    "Topology",
    "connect",
    "shard_of",
    "HDR_ATTEMPT",
    "HDR_PUBLISHED_MS",
    "HDR_ERROR",
    "HDR_CHANNEL",
    "HDR_REPLAYED",
    "login_of",
]

HDR_ATTEMPT = "x-dingskill-attempt"  # failed attempts so far
HDR_PUBLISHED_MS = "x-dingskill-published-ms"
HDR_ERROR = "x-dingskill-error"
HDR_CHANNEL = "x-dingskill-channel"
HDR_REPLAYED = "x-dingskill-replayed"  # published again by `dingskill dlq replay`


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached (the message names the URL, password redacted).
    ``tls``: the failure is in TLS (certificates, host name, client certificate, a TLS file
    that does not load): the message says which field of ``broker.tls`` to change."""

    def __init__(self, message: str, tls: bool = False) -> None:
        super().__init__(message)
        self.tls = tls


def shard_of(conversation_id: str, shards: int) -> int:
    """Stable shard of a conversation (the same in every gateway: CRC-32, not ``hash()``)."""
    return zlib.crc32(conversation_id.encode("utf-8")) % shards


@dataclass(frozen=True)
class Topology:
    queue: str = "dingskill"
    shards: int = 8
    max_attempts: int = 5
    retry_delay_s: float = 1.0
    retry_max_delay_s: float = 30.0

    @classmethod
    def from_config(cls, broker: dict) -> Topology:
        return cls(
            broker["queue"],
            int(broker["shards"]),
            int(broker["max_attempts"]),
            float(broker["retry_delay_s"]),
            float(broker["retry_max_delay_s"]),
        )

    @property
    def exchange(self) -> str:
        return self.queue

    def shard_queue(self, i: int) -> str:
        return f"{self.queue}.{i}"

    @property
    def shard_queues(self) -> list[str]:
        return [self.shard_queue(i) for i in range(self.shards)]

    @property
    def dlq(self) -> str:
        return f"{self.queue}.dlq"

    @property
    def audit_queue(self) -> str:
        return f"{self.queue}.audit"

    @property
    def presence_queue(self) -> str:
        return f"{self.queue}.workers"

    @property
    def retry_delays(self) -> list[float]:
        out, d = [], self.retry_delay_s
        while d < self.retry_max_delay_s and len(out) < 16:
            out.append(d)
            d *= 2
        return out + [self.retry_max_delay_s]

    def retry_exchange(self, failed_attempts: int) -> str:
        """Exchange of the back-off level for a message that failed ``failed_attempts`` times."""
        level = min(max(failed_attempts - 1, 0), len(self.retry_delays) - 1)
        return f"{self.queue}.retry.{level}"

    async def declare(self, channel) -> None:
        """Declare everything (same arguments in every service; safe to repeat)."""
        import aio_pika

        quorum = {"x-queue-type": "quorum"}
        ex = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        for i, name in enumerate(self.shard_queues):
            q = await channel.declare_queue(
                name, durable=True, arguments={**quorum, "x-single-active-consumer": True}
            )
            await q.bind(ex, routing_key=str(i))
        for level, delay in enumerate(self.retry_delays):
            name = f"{self.queue}.retry.{level}"
            rex = await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)
            q = await channel.declare_queue(
                name,
                durable=True,
                arguments={
                    **quorum,
                    "x-message-ttl": int(delay * 1000),
                    "x-dead-letter-exchange": self.exchange,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
            await q.bind(rex)
        await channel.declare_queue(self.dlq, durable=True, arguments=quorum)
        await channel.declare_queue(
            self.audit_queue,
            durable=True,
            arguments={**quorum, "x-single-active-consumer": True},
        )
        await channel.declare_queue(self.presence_queue, durable=True)


def _ssl_context(tls: dict) -> ssl.SSLContext:
    """The client side of ``amqps://``: TLS 1.2+, the server certificate verified against
    ``ca_path`` (else the system's CAs) and its host name checked, unless ``verify: false``;
    a client certificate from ``cert_path``/``key_path`` (mutual TLS). A file that cannot be
    loaded is a :class:`BrokerUnavailable` naming the field and the file."""
    ca = tls.get("ca_path") or None
    try:
        ctx = ssl.create_default_context(cafile=ca)
    except (ssl.SSLError, OSError) as exc:
        raise BrokerUnavailable(
            f"broker.tls.ca_path: cannot load CA certificates from {ca}: {_why(exc)} "
            "(expected one or more PEM certificates)",
            tls=True,
        ) from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.get("cert_path"):
        try:
            ctx.load_cert_chain(tls["cert_path"], tls.get("key_path"))
        except (ssl.SSLError, OSError) as exc:
            raise BrokerUnavailable(
                f"broker.tls.cert_path/key_path: cannot load the client certificate "
                f"{tls['cert_path']} with key {tls.get('key_path')}: {_why(exc)} "
                "(expected PEM files, an unencrypted key that matches the certificate)",
                tls=True,
            ) from None
    if not tls.get("verify", True):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def connect(broker: dict, name: str, robust: bool = True):
    """A (robust: reconnecting, restoring channels and consumers) connection to
    ``broker.url``; :class:`BrokerUnavailable` with the URL (password redacted) if the first
    attempt fails."""
    import aio_pika

    url = broker["url"]
    kw: dict = {
        "timeout": broker.get("connect_timeout_s", 10),
        "client_properties": {"connection_name": name},
    }
    if url.startswith("amqps://"):
        kw["ssl_context"] = _ssl_context(broker.get("tls") or {})
    fn = aio_pika.connect_robust if robust else aio_pika.connect
    quiet = [logging.getLogger(n) for n in ("aiormq.connection", "aio_pika.robust_connection")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)  # the first failure is reported once, below
    try:
        return await fn(url, **kw)
    except Exception as exc:  # noqa: BLE001 - socket, TLS (raw or wrapped by aiormq), protocol
        raise BrokerUnavailable(
            _failure(exc, url, broker.get("tls")),
            tls=url.startswith("amqps://") and _tls_related(exc),
        ) from None
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)


def _failure(exc: BaseException, url: str, tls: dict | None = None) -> str:
    """The one line for a failed first connection: the URL (password redacted), what went
    wrong and, for TLS, what to change."""
    where = redact_password(url)
    problem = _tls_problem(exc)
    if problem is not None:
        return f"cannot connect to the broker at {where}: {problem}"
    reset = isinstance(exc, ConnectionResetError) or "connection reset" in str(exc).lower()
    if reset and url.startswith("amqps://"):
        # TLS 1.3: the broker judges a client certificate after the client's side of the
        # handshake is done, so its refusal may arrive as a reset instead of an alert
        return (
            f"cannot connect to the broker at {where}: the broker closed the TLS connection "
            "after the handshake (connection reset); if it checks client certificates, "
            + (
                "broker.tls.cert_path must be signed by a CA the broker trusts "
                "(its ssl_options.cacertfile)"
                if (tls or {}).get("cert_path")
                else "set broker.tls.cert_path and broker.tls.key_path"
            )
        )
    hint = " (if this port is a TLS listener, use amqps://)" if reset else ""
    if isinstance(exc, OSError | asyncio.TimeoutError | ConnectionError):
        return f"cannot reach the broker at {where}: {_why(exc)}{hint}"
    return f"cannot connect to the broker at {where}: {_why(exc)}{hint}"


def _tls_related(exc: BaseException) -> bool:
    return _ssl_error(exc) is not None or "connection reset" in str(exc).lower()


# OpenSSL verify codes (X509_V_ERR_*) of an untrusted chain and of a name mismatch
_UNTRUSTED = {2, 18, 19, 20, 21}
_NAME_MISMATCH = {62, 64}
_EXPIRED = {9, 10}


def _ssl_error(exc: BaseException | None, depth: int = 0) -> ssl.SSLError | None:
    """The :class:`ssl.SSLError` behind ``exc`` (itself, its cause/context or an argument:
    aiormq wraps some in its own errors)."""
    if exc is None or depth > 4:
        return None
    if isinstance(exc, ssl.SSLError):
        return exc
    for inner in (exc.__cause__, exc.__context__, *getattr(exc, "args", ())):
        if isinstance(inner, BaseException):
            found = _ssl_error(inner, depth + 1)
            if found is not None:
                return found
    return None


def _tls_problem(exc: BaseException) -> str | None:
    """What a TLS failure means and what to do, or None when ``exc`` is not one."""
    err = _ssl_error(exc)
    if err is None:
        return None
    if isinstance(err, ssl.SSLCertVerificationError):
        code, why = err.verify_code, (err.verify_message or _why(err)).rstrip(".")
        if code in _NAME_MISMATCH:
            return (
                f"TLS hostname mismatch: the broker's certificate is not valid for this host "
                f"({why}); use a host name the certificate lists in broker.url, or have the "
                "certificate issued for this name"
            )
        if code in _EXPIRED:
            return f"TLS certificate verify failed: {why}; renew the broker's certificate"
        if code in _UNTRUSTED:
            return (
                f"TLS certificate verify failed: {why}; set broker.tls.ca_path to the CA "
                "certificate (PEM) that signed the broker's certificate"
            )
        return f"TLS certificate verify failed: {why}"
    reason = (err.reason or "").upper()
    if reason == "WRONG_VERSION_NUMBER":
        return (
            "TLS handshake failed (wrong version number): this port does not speak TLS; "
            "use amqp:// for it, or the broker's TLS port (5671 by default) with amqps://"
        )
    if "CERTIFICATE_REQUIRED" in reason:
        return (
            "the broker requires a client certificate (mutual TLS): set broker.tls.cert_path "
            "and broker.tls.key_path"
        )
    if reason.startswith("TLSV1_ALERT_") and any(
        w in reason for w in ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN")
    ):
        return (
            f"the broker refused our client certificate ({reason.lower()}): "
            "broker.tls.cert_path must be signed by a CA the broker trusts "
            "(its ssl_options.cacertfile)"
        )
    return f"TLS handshake failed: {_why(err)}"


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    for part in (text.splitlines() or [""])[:1]:
        return part[:200]
    return type(exc).__name__


def login_of(url: str) -> str | None:
    """The user name of an ``amqp://user:pass@host/`` URL: published as ``user_id``, which the
    broker checks against the connection's login (a message cannot claim another sender)."""
    from urllib.parse import unquote, urlsplit

    user = urlsplit(url).username
    return unquote(user) if user else None


def encode(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
