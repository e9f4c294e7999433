"""Runtime configuration: JSON or YAML in the shape the platform's guides use, validated with
errors that name the field; secrets from the environment; printed redacted."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["ConfigError", "RuntimeConfig", "load_config"]


class ConfigError(ValueError):
    """A configuration field is missing, of the wrong type or out of range."""


DEFAULTS: dict = {
    "server": {
        "host": "127.0.0.1",
        "port": 8080,
        "header_timeout_s": 10.0,  # a connection must send its request headers within this
        "ssl": {"enabled": False, "cert_path": None, "key_path": None},
    },
    "storage": {
        "type": "sqlite",
        "connection_string": "redis://localhost:6379/0",
        "path": None,
        "context_ttl_s": 7 * 86400,
    },
    "channels": {
        "enterprise_chat": {
            "enabled": True,
            "mode": "stream",
            "endpoint": None,
            "auth": {"app_key": None, "app_secret": None},
            # max_skew_s: how far a request's timestamp may be from now (the platform allows
            # an hour; a captured timestamp/sign pair signs any body that long)
            "webhook": {"path": "/api/v1/webhook", "timeout": 5000, "max_skew_s": 300},
        }
    },
    # secrets: {"<skill id>": ["ENV_NAME", ...]}: the only ${NAME}s a skill's HTTP actions get
    "skills": {"home": None, "require_signature": False, "reload_interval_s": 1.0, "secrets": {}},
    "limits": {
        "user_per_minute": 30,
        "conversation_per_minute": 60,
        "global_per_second": 2000,
        "max_text_chars": 4000,
        "handler_timeout_s": 5.0,
        "reply_timeout_s": 5.0,
        "reply_retries": 3,
        "reply_backoff_s": 0.2,
        "max_inflight": 1000,
        "dedup_ttl_s": 86400,
        "claim_ttl_s": 120,
    },
    "audit": {
        "path": None,
        "store": True,
        "retention_days": 180,
        "alert_webhook": None,
        "access_report_interval_s": 86400,
    },
    # roles: override the permission matrix, e.g. {"auditor": ["audit.read", "metrics.read"]}
    # outbound_allow_private: hosts / networks (127.0.0.1/32) skills may call though not public
    "security": {
        "encrypt": "auto",
        "admins": {},
        "metrics_public": True,
        "roles": {},
        "outbound_allow_private": [],
    },
    # format: json (compact) | ecs (Elastic Common Schema field names, for Filebeat / ELK)
    # behaviour baseline per actor (admin operations, messages) with an alert on departures
    "baseline": {
        "enabled": True,
        "window_s": 60.0,
        "factor": 5.0,
        "sigmas": 4.0,
        "min_admin": 10,
        "min_messages": 30,
    },
    "logging": {"level": "INFO", "path": None, "format": "json", "service_name": "dingskill"},
    # the split deployment (`dingskill gateway | worker | audit-writer`); `dingskill run` ignores it
    "broker": {
        "url": "amqp://guest:guest@localhost:5672/",
        "queue": "dingskill",
        "shards": 8,
        "prefetch": 32,
        "max_attempts": 5,
        "retry_delay_s": 1.0,
        "retry_max_delay_s": 30.0,
        "confirm_timeout_s": 10.0,
        "connect_timeout_s": 10.0,
        "tls": {"ca_path": None, "cert_path": None, "key_path": None, "verify": True},
    },
}

_TYPES = {
    "server.host": str,
    "server.port": int,
    "server.header_timeout_s": (int, float),
    "server.ssl.enabled": bool,
    "storage.type": str,
    "storage.connection_string": str,
    "storage.context_ttl_s": (int, float),
    "channels.enterprise_chat.enabled": bool,
    "channels.enterprise_chat.mode": str,
    "channels.enterprise_chat.webhook.path": str,
    "channels.enterprise_chat.webhook.timeout": (int, float),
    "channels.enterprise_chat.webhook.max_skew_s": (int, float),
    "skills.require_signature": bool,
    "security.metrics_public": bool,
    "skills.reload_interval_s": (int, float),
    "audit.store": bool,
    "audit.retention_days": (int, float),
    "logging.level": str,
    "logging.format": str,
    "baseline.enabled": bool,
    "baseline.window_s": (int, float),
    "baseline.factor": (int, float),
    "baseline.sigmas": (int, float),
    "baseline.min_admin": int,
    "baseline.min_messages": int,
    "logging.service_name": str,
    "broker.url": str,
    "broker.queue": str,
    "broker.shards": int,
    "broker.prefetch": int,
    "broker.max_attempts": int,
    "broker.retry_delay_s": (int, float),
    "broker.retry_max_delay_s": (int, float),
    "broker.confirm_timeout_s": (int, float),
    "broker.connect_timeout_s": (int, float),
    "broker.tls.verify": bool,
}


def _merge(base: dict, over: dict, path: str = "") -> dict:
    out = dict(base)
    for k, v in over.items():
        where = f"{path}.{k}" if path else k
        if k not in base:
            raise ConfigError(f"{where}: unknown field (known: {', '.join(sorted(base))})")
        if isinstance(base[k], dict) and base[k] and k not in ("admins", "roles"):
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: must be an object")
            out[k] = _merge(base[k], v, where)
        else:
            out[k] = v
    return out


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d[part]
    return d


@dataclass
class RuntimeConfig:
    data: dict = field(default_factory=lambda: json.loads(json.dumps(DEFAULTS)))
    source: str = "<defaults>"

    def __getitem__(self, key: str):
        return self.data[key]

    def get(self, dotted: str):
        return _get(self.data, dotted)

    @property
    def app_key(self) -> str | None:
        return self.data["channels"]["enterprise_chat"]["auth"]["app_key"]

    @property
    def app_secret(self) -> str | None:
        return self.data["channels"]["enterprise_chat"]["auth"]["app_secret"]

    def redacted(self) -> dict:
        d = json.loads(json.dumps(self.data))
        auth = d["channels"]["enterprise_chat"]["auth"]
        if auth.get("app_secret"):
            auth["app_secret"] = "***"
        d["storage"]["connection_string"] = _redact_url(d["storage"]["connection_string"])
        d["broker"]["url"] = redact_password(d["broker"]["url"])
        return d

    def __repr__(self) -> str:
        return f"RuntimeConfig({self.source}, {json.dumps(self.redacted(), ensure_ascii=False)})"


def _redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def redact_password(url: str) -> str:
    """``amqp://user:secret@host/`` -> ``amqp://user:***@host/`` (the user stays: it helps)."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    cred, host = rest.rsplit("@", 1)
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in cred else url


def _validate_broker(b: dict) -> None:
    if not b["url"].startswith(("amqp://", "amqps://")):
        raise ConfigError(
            f"broker.url: expected amqp://user:password@host:port/vhost or amqps://..., "
            f"got {redact_password(b['url'])!r}"
        )
    if not b["queue"] or not all(c.isalnum() or c in "-_." for c in b["queue"]):
        raise ConfigError(f"broker.queue: {b['queue']!r} must be letters, digits, '-', '_' or '.'")
    for k, lo, hi in (("shards", 1, 1024), ("prefetch", 1, 10000), ("max_attempts", 1, 100)):
        if not lo <= b[k] <= hi:
            raise ConfigError(f"broker.{k}: {b[k]} is out of range ({lo}-{hi})")
    for k in ("retry_delay_s", "retry_max_delay_s", "confirm_timeout_s", "connect_timeout_s"):
        if b[k] <= 0:
            raise ConfigError(f"broker.{k}: must be > 0, got {b[k]!r}")
    if b["retry_max_delay_s"] < b["retry_delay_s"]:
        raise ConfigError("broker.retry_max_delay_s: must be >= broker.retry_delay_s")
    for k in ("ca_path", "cert_path", "key_path"):
        v = b["tls"][k]
        if v is not None and not Path(str(v)).is_file():
            raise ConfigError(f"broker.tls.{k}: file {v} not found")
    if bool(b["tls"]["cert_path"]) != bool(b["tls"]["key_path"]):
        raise ConfigError("broker.tls: cert_path and key_path go together (client certificate)")


def _validate(d: dict) -> None:
    for dotted, typ in _TYPES.items():
        v = _get(d, dotted)
        if v is not None and (not isinstance(v, typ) or (typ is int and isinstance(v, bool))):
            want = typ.__name__ if isinstance(typ, type) else "number"
            raise ConfigError(f"{dotted}: expected {want}, got {type(v).__name__} {v!r}")
    port = d["server"]["port"]
    if not 0 <= port <= 65535:
        raise ConfigError(f"server.port: {port} is not a port (0-65535)")
    if d["storage"]["type"] not in ("sqlite", "memory", "redis"):
        raise ConfigError(
            f"storage.type: {d['storage']['type']!r} is not one of sqlite, memory, redis"
        )
    if d["storage"]["type"] == "redis" and not d["storage"]["connection_string"].startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError("storage.connection_string: expected redis://host:port/db")
    ch = d["channels"]["enterprise_chat"]
    if ch["mode"] not in ("stream", "webhook"):
        raise ConfigError(
            f"channels.enterprise_chat.mode: {ch['mode']!r} is not one of stream, webhook"
        )
    if not str(ch["webhook"]["path"]).startswith("/"):
        raise ConfigError("channels.enterprise_chat.webhook.path: must start with '/'")
    ssl = d["server"]["ssl"]
    if ssl["enabled"]:
        for k in ("cert_path", "key_path"):
            if not ssl.get(k):
                raise ConfigError(f"server.ssl.{k}: required when server.ssl.enabled is true")
            if not Path(ssl[k]).is_file():
                raise ConfigError(f"server.ssl.{k}: file {ssl[k]} not found")
    for k, v in d["limits"].items():
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"limits.{k}: expected a number >= 0, got {v!r}")
    hook = d["audit"]["alert_webhook"]
    if hook is not None and (
        not isinstance(hook, str) or not hook.startswith(("http://", "https://"))
    ):
        raise ConfigError(f"audit.alert_webhook: expected an http(s) URL, got {hook!r}")
    if d["audit"]["retention_days"] <= 0:
        raise ConfigError("audit.retention_days: must be > 0")
    secrets = d["skills"]["secrets"]
    if not isinstance(secrets, dict) or not all(
        isinstance(k, str)
        and isinstance(v, list)
        and all(isinstance(n, str) and n.isidentifier() for n in v)
        for k, v in secrets.items()
    ):
        raise ConfigError(
            "skills.secrets: expected {skill id: [ENV_NAME, ...]}, got " + repr(secrets)[:80]
        )
    allow = d["security"]["outbound_allow_private"]
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise ConfigError("security.outbound_allow_private: expected a list of hosts or networks")
    if d["security"]["encrypt"] not in (True, False, "auto"):
        raise ConfigError("security.encrypt: true, false or auto")
    if d["logging"]["level"].upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"logging.level: {d['logging']['level']!r} is not a log level")
    if d["baseline"]["window_s"] <= 0 or d["baseline"]["factor"] < 1:
        raise ConfigError("baseline: window_s must be > 0 and factor >= 1")
    if d["logging"]["format"] not in ("json", "ecs"):
        raise ConfigError(f"logging.format: {d['logging']['format']!r} is not one of json, ecs")
    _validate_broker(d["broker"])


def load_config(
    path=None, environ: dict | None = None, overrides: dict | None = None
) -> RuntimeConfig:
    """Read ``path`` (JSON or YAML; None = embedded defaults), apply the environment
    (``DINGSKILL_APP_KEY``, ``DINGSKILL_APP_SECRET``, ``DINGSKILL_HOME``,
    ``DINGSKILL_BROKER_URL``) and validate."""
    env = os.environ if environ is None else environ
    data: dict = {}
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read ({exc.strerror})") from exc
        try:
            data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}"
            ) from exc
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the configuration must be an object")
    try:
        merged = _merge(json.loads(json.dumps(DEFAULTS)), data)
        if overrides:
            merged = _merge(merged, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    auth = merged["channels"]["enterprise_chat"]["auth"]
    auth["app_key"] = env.get("DINGSKILL_APP_KEY") or auth["app_key"]
    auth["app_secret"] = env.get("DINGSKILL_APP_SECRET") or auth["app_secret"]
    # the broker URL (it holds a password) may come from the environment instead of the file
    merged["broker"]["url"] = env.get("DINGSKILL_BROKER_URL") or merged["broker"]["url"]
    home = merged["skills"]["home"] or env.get("DINGSKILL_HOME") or str(Path.home() / ".dingskill")
    merged["skills"]["home"] = home
    merged["storage"]["path"] = merged["storage"]["path"] or str(Path(home) / "runtime.db")
    merged["audit"]["path"] = merged["audit"]["path"] or str(
        Path(home) / "audit" / "messages.jsonl"
    )
    try:
        _validate(merged)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return RuntimeConfig(merged, source)
