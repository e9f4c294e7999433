"""The runtime configuration as typed objects: one dataclass per section, each field with its
type, default, limits and one line of documentation. From these come the defaults, the
JSON Schema that validates a configuration file (``dingskill schema config``) and the typed
view ``RuntimeConfig.settings``.

Adding a section (e.g. ``broker``): write a dataclass whose fields use :func:`setting`, add
it to :data:`SECTIONS` (or call :func:`register_section`), and put cross-field checks that a
schema cannot express in a ``check(self) -> None`` method raising ``ValueError("field: why")``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "SECTIONS",
    "Settings",
    "StorageType",
    "ChannelMode",
    "LogFormat",
    "config_schema",
    "defaults",
    "register_section",
    "setting",
    "to_settings",
]


def setting(default: Any, doc: str, **limits: Any) -> Any:
    """A documented field: ``limits`` are JSON Schema keywords (``minimum``, ``maximum``,
    ``exclusiveMinimum``, ``pattern``, ``enum``)."""
    meta = {"doc": doc, **limits}
    if isinstance(default, dict | list):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    if dataclasses.is_dataclass(default):
        return field(default_factory=type(default), metadata=meta)
    return field(default=default, metadata=meta)


class StorageType(str, Enum):
    SQLITE = "sqlite"
    MEMORY = "memory"
    REDIS = "redis"


class ChannelMode(str, Enum):
    STREAM = "stream"
    WEBHOOK = "webhook"


class LogFormat(str, Enum):
    JSON = "json"
    ECS = "ecs"


@dataclass
class SSL:
    enabled: bool = setting(False, "serve HTTPS with the files below")
    cert_path: str | None = setting(None, "PEM certificate chain")
    key_path: str | None = setting(None, "PEM private key")


@dataclass
class Server:
    host: str = setting("127.0.0.1", "address the health / metrics / admin server binds")
    port: int = setting(8080, "its port (0: any free port)", minimum=0, maximum=65535)
    header_timeout_s: float = setting(
        10.0, "a connection must send its request headers within this", exclusiveMinimum=0
    )
    body_timeout_s: float = setting(
        10.0, "and its request body within this of the headers", exclusiveMinimum=0
    )
    max_connections_per_client: int = setting(
        64,
        "open connections one client address may hold (0: no cap; raise it behind a reverse "
        "proxy, where every client has the proxy's address)",
        minimum=0,
    )
    ssl: SSL = setting(SSL(), "TLS of that server")


@dataclass
class Storage:
    type: StorageType = setting(
        StorageType.SQLITE, "sqlite (one process), memory, redis (replicas)"
    )
    connection_string: str = setting("redis://localhost:6379/0", "Redis URL for type redis")
    path: str | None = setting(None, "SQLite file (default: <skills.home>/runtime.db)")
    context_ttl_s: float = setting(7 * 86400, "conversation context kept this long", minimum=0)
    shared_turns: bool = setting(
        False,
        "other processes share this store (replicas on one Redis, the workers of one run): "
        "a conversation's turns also take a lease in it, to run one at a time across them",
    )


@dataclass
class Auth:
    app_key: str | None = setting(None, "AppKey (or DINGSKILL_APP_KEY)")
    app_secret: str | None = setting(None, "AppSecret (or DINGSKILL_APP_SECRET; never printed)")


@dataclass
class Webhook:
    path: str = setting("/api/v1/webhook", "HTTP path DingTalk posts to", pattern="^/")
    timeout: float = setting(5000, "ms to answer in the HTTP response", minimum=0)
    max_skew_s: float = setting(
        300,
        "how far a request's timestamp may be from now (a captured timestamp/sign pair signs "
        "any body that long)",
        minimum=0,
    )


@dataclass
class EnterpriseChat:
    enabled: bool = setting(True, "connect to DingTalk")
    mode: ChannelMode = setting(ChannelMode.STREAM, "stream (WebSocket) or webhook (HTTP)")
    endpoint: str | None = setting(
        None,
        "gateway URL, also the robot OpenAPI's in webhook mode (None: DingTalk's; the "
        "emulator's in tests)",
    )
    auth: Auth = setting(Auth(), "the app's credentials")
    webhook: Webhook = setting(Webhook(), "webhook mode")
    openapi_qps: float = setting(
        20,
        "OpenAPI calls a second one `dingskill run` makes to each API (the platform allows "
        "20 per app per API: its worker processes split it; split it between replicas by "
        "hand; 0: no pacing)",
        minimum=0,
    )
    openapi_qps_retries: int = setting(
        6, "retries of a call the platform throttled (403 QpsLimit...)", minimum=0, maximum=50
    )


@dataclass
class Channels:
    enterprise_chat: EnterpriseChat = setting(EnterpriseChat(), "the DingTalk robot")


@dataclass
class Skills:
    home: str | None = setting(None, "installed skills (default: DINGSKILL_HOME or ~/.dingskill)")
    require_signature: bool = setting(False, "refuse unsigned packages")
    reload_interval_s: float = setting(1.0, "how often installs are picked up", minimum=0)
    secrets: dict[str, list[str]] = setting(
        {}, "{skill id: [ENV_NAME, ...]}: the only ${NAME}s a skill's HTTP actions get"
    )


@dataclass
class Limits:
    user_per_minute: float = setting(
        30, "messages a user may send a minute (0: no limit)", minimum=0
    )
    conversation_per_minute: float = setting(60, "messages a conversation a minute", minimum=0)
    global_per_second: float = setting(2000, "messages the replica takes a second", minimum=0)
    max_text_chars: int = setting(4000, "longer messages are refused politely", minimum=1)
    handler_timeout_s: float = setting(5.0, "a response taking longer falls back", minimum=0)
    reply_timeout_s: float = setting(5.0, "one reply POST", minimum=0)
    reply_retries: int = setting(3, "reply attempts after the first", minimum=0)
    reply_backoff_s: float = setting(0.2, "first back-off between reply attempts", minimum=0)
    max_inflight: int = setting(1000, "messages processed at once; more wait their turn", minimum=1)
    dedup_ttl_s: float = setting(86400, "a message id is remembered this long", minimum=0)
    claim_ttl_s: float = setting(
        120,
        "a message's 'processing' mark expires after this (then a resend is handled again)",
        minimum=0,
    )
    turn_lease_margin_s: float = setting(
        10.0,
        "processes sharing the store: a conversation's turn lease lasts handler_timeout_s plus "
        "this (a killed process blocks its conversation no longer)",
        minimum=0,
    )


@dataclass
class Understanding:
    workers: int = setting(
        0,
        "classification threads computing encodings and decisions (0: one per core but one)",
        minimum=0,
    )
    max_batch: int = setting(32, "utterances per batched encoder forward pass", minimum=1)
    window_ms: float = setting(
        0.0,
        "how long the first message of a batch waits for others to share its forward pass "
        "(0: none; batches still form while every thread is busy)",
        minimum=0,
    )
    max_queue: int = setting(
        256,
        "messages waiting for classification before new ones get 'busy, please retry' (0: no limit)",
        minimum=0,
    )
    max_wait_ms: float = setting(
        2000.0,
        "a message that already waited this long in the pipeline gets 'busy, please retry' "
        "(a backlog on the event loop itself; 0: never)",
        minimum=0,
    )
    route_ahead: bool = setting(
        True, "also run the engine's routing in the threads (decisions cached off the loop)"
    )


@dataclass
class Processes:
    """Worker processes of one ``dingskill run``: each is a whole runtime with its own Stream
    connection (the platform hands every message to one of them), sharing the storage."""

    count: int = setting(
        1,
        "runtime processes one `dingskill run` starts (0: one per core); more than one needs "
        "Stream mode and sqlite or redis storage",
        minimum=0,
    )
    restart_max_backoff_s: float = setting(
        30.0, "longest wait before a worker that died is started again", minimum=0.1
    )
    gc_thresholds: list[int] = setting(
        [10000, 20, 20],
        "the cyclic garbage collector's thresholds in each serving process (gen0 allocations, "
        "gen1, gen2; Python's 700, 10, 10 ran a young collection every message or two)",
    )


@dataclass
class Audit:
    path: str | None = setting(None, "JSON Lines file (default: <home>/audit/messages.jsonl)")
    store: bool = setting(True, "also keep records in the store")
    retention_days: float = setting(180, "older records are pruned", exclusiveMinimum=0)
    alert_webhook: str | None = setting(None, "http(s) URL alerted on sensitive events")
    access_report_interval_s: float = setting(86400, "periodic access review", minimum=0)


@dataclass
class Security:
    encrypt: bool | str = setting(
        "auto", "encrypt at rest: true, false or auto", enum=[True, False, "auto"]
    )
    metrics_public: bool = setting(True, "serve /metrics without a token")
    roles: dict[str, list[str]] = setting({}, "override the permission matrix {role: [perm, ...]}")
    outbound_allow_private: list[str] = setting(
        [], "hosts / networks (127.0.0.1/32) skills may call though not public"
    )


@dataclass
class Baseline:
    enabled: bool = setting(True, "alert when an actor departs from its behaviour baseline")
    window_s: float = setting(60.0, "counting window", exclusiveMinimum=0)
    factor: float = setting(5.0, "departure: this many times the baseline", minimum=1)
    sigmas: float = setting(4.0, "and this many standard deviations", minimum=0)
    min_admin: int = setting(10, "admin operations a window before alerting", minimum=0)
    min_messages: int = setting(30, "messages a window before alerting", minimum=0)


@dataclass
class Report:
    daily_at: str | None = setting(
        None, "HH:MM (UTC): the runtime writes (and posts) the daily report then; None: off"
    )
    output_dir: str | None = setting(None, "where reports go (default SKILLS_HOME/reports)")
    post: bool = setting(False, "post the digest to the operators' group (robot OpenAPI)")
    robot_code: str | None = setting(None, "robot that posts (default: the AppKey)")
    open_conversation_id: str | None = setting(None, "the operators' group (openConversationId)")
    openapi_endpoint: str | None = setting(
        None, "OpenAPI base URL (default: the channel endpoint, else https://api.dingtalk.com)"
    )
    low_confidence: float = setting(
        0.6, "answers under this confidence go to the review file", minimum=0, maximum=1
    )


@dataclass
class Logging:
    level: str = setting(
        "INFO", "DEBUG, INFO, WARNING or ERROR", pattern="(?i)^(DEBUG|INFO|WARNING|ERROR)$"
    )
    path: str | None = setting(None, "log file ({hostname} expands); None: stderr")
    format: LogFormat = setting(LogFormat.JSON, "json (compact) or ecs (Elastic Common Schema)")
    service_name: str = setting("dingskill", "service.name in ECS records")


@dataclass
class BrokerTLS:
    ca_path: str | None = setting(None, "CA bundle")
    cert_path: str | None = setting(None, "client certificate")
    key_path: str | None = setting(None, "client key")
    verify: bool = setting(True, "verify the broker's certificate")


@dataclass
class Broker:
    url: str = setting(
        "amqp://guest:guest@localhost:5672/", "amqp(s) URL (or DINGSKILL_BROKER_URL)"
    )
    queue: str = setting("dingskill", "queue name prefix", pattern="^[A-Za-z0-9._-]+$")
    shards: int = setting(8, "shard queues", minimum=1, maximum=1024)
    prefetch: int = setting(32, "unacknowledged messages per worker", minimum=1, maximum=10000)
    max_attempts: int = setting(5, "deliveries before the DLQ", minimum=1, maximum=100)
    retry_delay_s: float = setting(1.0, "first retry delay", exclusiveMinimum=0)
    retry_max_delay_s: float = setting(30.0, "longest retry delay", exclusiveMinimum=0)
    confirm_timeout_s: float = setting(10.0, "publisher confirm wait", exclusiveMinimum=0)
    connect_timeout_s: float = setting(10.0, "connection wait", exclusiveMinimum=0)
    publish_retry_s: float = setting(
        120.0,
        "how long the gateway keeps retrying an unconfirmed publish (broker away) before it "
        "refuses the message; the platform does not resend robot messages",
        minimum=0,
    )
    tls: BrokerTLS = setting(BrokerTLS(), "TLS to the broker")
    message_keys: list[str] = setting(
        [],
        "KEY_ID:SECRET keys authenticating gateway -> worker messages; the first signs, all "
        "verify (rotation); or DINGSKILL_BROKER_KEYS; empty: derived from the AppSecret",
    )
    replay_token_ttl_s: float = setting(
        86400.0, "a `dingskill dlq replay` token is honoured this long", exclusiveMinimum=0
    )
    session_webhook_hosts: list[str] = setting(
        ["oapi.dingtalk.com", "api.dingtalk.com"],
        "hosts (host, host:port or https://host) a message's session webhook may point at; "
        "the configured endpoint is always allowed",
    )


@dataclass
class Unsupported:
    zh: str | None = setting(
        None, "answer to a picture/file/video no skill takes ({kind}: its name)"
    )
    en: str | None = setting(None, "the same in English")


@dataclass
class Messages:
    """What the bot answers to messages without readable text that no skill declares."""

    unsupported: Unsupported = setting(Unsupported(), "the polite answer per language")
    default_language: str = setting(
        "zh", "language before the user wrote any text", enum=["zh", "en"]
    )
    reply_language: str = setting(
        "auto",
        "language of the bot's own words (out of scope, clarifying questions, handover): "
        "auto (the user's message's), zh or en; skills answer in the language they were written in",
        enum=["auto", "zh", "en"],
    )


@dataclass
class Arbitration:
    """How one message is given to one of the loaded skills (docs/skills.md, Arbitration)."""

    small_talk_confidence: float = setting(
        0.8, "a model's greet / goodbye / thanks below this is no answer", minimum=0, maximum=1
    )
    clarify_below: float = setting(
        0.8, "a winner under this confidence with a close runner-up asks", minimum=0, maximum=1
    )
    clarify_margin: float = setting(
        0.3, "how close the runner-up must be to ask 'did you mean'", minimum=0, maximum=1
    )
    foreign_margin: float = setting(
        0.2,
        "a skill not declaring the message's language wins only this much more confident",
        minimum=0,
        maximum=1,
    )
    long_message: int = setting(
        200, "longer messages go to the skill as their asking sentence(s)", minimum=1
    )


@dataclass
class Handover:
    """A person to hand over to when the bot keeps misunderstanding (or on 转人工 / human)."""

    after_misses: int = setting(
        3, "out-of-scope replies in a row before offering (0: never)", minimum=0
    )
    contact: str | None = setting(None, "who to reach, shown to the user (name, phone, group name)")
    group: str | None = setting(
        None, "openConversationId of a group told who needs help (a robot OpenAPI follow-up)"
    )


@dataclass
class Cards:
    """AI cards (skills holding Card.Streaming.Write; a skill's ai_card section wins) and
    interactive cards (Card.Instance.Write), sent as the SDK's CardReplier sends them."""

    ai_template_id: str | None = setting(None, "AI card template id (e.g. xxx.schema)", minLength=1)
    interactive_template_id: str | None = setting(
        None, "interactive card template with title/text/buttons/status keys", minLength=1
    )
    content_key: str = setting("content", "the AI card template's streaming key", minLength=1)
    callback_type: str = setting(
        "STREAM", "card callbacks: STREAM or HTTP", enum=["STREAM", "HTTP"]
    )
    stream_chunks: int = setting(
        3,
        "pieces an AI card's text is streamed in (they merge when the OpenAPI's pace is short)",
        minimum=1,
        maximum=50,
    )


@dataclass
class Events:
    subscribe: list[str] = setting([], "EVENT types handed to skills (e.g. chat_add_member)")


# section name -> dataclass; the order is the order of `dingskill schema config`
SECTIONS: dict[str, type] = {
    "server": Server,
    "storage": Storage,
    "channels": Channels,
    "skills": Skills,
    "limits": Limits,
    "understanding": Understanding,
    "processes": Processes,
    "audit": Audit,
    "security": Security,
    "baseline": Baseline,
    "report": Report,
    "logging": Logging,
    "broker": Broker,
    "messages": Messages,
    "arbitration": Arbitration,
    "handover": Handover,
    "cards": Cards,
    "events": Events,
}


def register_section(name: str, cls: type) -> None:
    """Add a configuration section (a dataclass of :func:`setting` fields)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"section {name}: {cls!r} is not a dataclass")
    SECTIONS[name] = cls


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def defaults() -> dict:
    """The default configuration as plain JSON-able data."""
    return {name: _plain(cls()) for name, cls in SECTIONS.items()}


def _type_schema(tp: Any) -> dict:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_type_schema(a) for a in typing.get_args(tp)]}
    if tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"enum": [m.value for m in tp]}
    if origin is list:
        return {"type": "array", "items": _type_schema(typing.get_args(tp)[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(typing.get_args(tp)[1])}
    if dataclasses.is_dataclass(tp):
        return _class_schema(tp)
    raise TypeError(f"no schema for {tp!r}")


def _class_schema(cls: type) -> dict:
    hints = typing.get_type_hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        doc = meta.pop("doc", "")
        schema = _type_schema(hints[f.name])
        if "enum" in meta:
            schema = {"enum": meta.pop("enum")}
        if meta and "anyOf" in schema:  # limits apply to the non-null alternative
            schema["anyOf"] = [
                {**s, **meta} if s.get("type") != "null" else s for s in schema["anyOf"]
            ]
        else:
            schema.update(meta)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        props[f.name] = {"description": doc, **schema, "default": _plain(default)}
    doc = (cls.__doc__ or "").strip()
    out = {"type": "object", "additionalProperties": False, "properties": props}
    if doc and not doc.startswith(f"{cls.__name__}("):
        out["description"] = doc
    return out


def config_schema() -> dict:
    """JSON Schema (draft 2020-12) of a runtime configuration file."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dingskill runtime configuration (dingskill run --config FILE)",
        "type": "object",
        "additionalProperties": False,
        "properties": {name: _class_schema(cls) for name, cls in SECTIONS.items()},
    }


def _build(tp: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = typing.get_type_hints(tp)
        return tp(**{k: _build(hints[k], v) for k, v in value.items() if k in hints})
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    return value


@dataclass
class Settings:
    """The whole configuration, typed: ``settings.limits.max_inflight``."""

    sections: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.sections[name]
        except KeyError:
            raise AttributeError(name) from None


def to_settings(data: dict) -> Settings:
    """Typed objects from validated configuration data; runs each section's ``check()``."""
    built = {}
    for name, cls in SECTIONS.items():
        obj = _build(cls, data.get(name, {}))
        check = getattr(obj, "check", None)
        if check is not None:
            try:
                check()
            except ValueError as exc:
                raise ValueError(f"{name}.{exc}") from None
        built[name] = obj
    return Settings(built)
