"""Runtime configuration: JSON or YAML in the shape the platform's guides use, validated with
errors that name the field; secrets from the environment; printed redacted."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..schema_check import SchemaValidator
from .settings import Settings, config_schema, defaults, to_settings

__all__ = ["ConfigError", "RuntimeConfig", "SCHEMA", "load_config"]


class ConfigError(ValueError):
    """A configuration field is missing, of the wrong type or out of range."""


# The sections, their types, defaults, limits and documentation are the dataclasses of
# runtime/settings.py (add a section there); the JSON Schema below is generated from them.
DEFAULTS: dict = defaults()
SCHEMA: dict = config_schema()


def _merge(base: dict, over: dict, path: str = "") -> dict:
    out = dict(base)
    for k, v in over.items():
        where = f"{path}.{k}" if path else k
        if k not in base:
            raise ConfigError(f"{where}: unknown field (known: {', '.join(sorted(base))})")
        if isinstance(base[k], dict) and base[k] and k not in ("roles", "secrets"):
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
    """Validated configuration: ``data`` (plain, what the file says plus defaults) and
    ``settings`` (the same as typed objects, :mod:`dingskill.runtime.settings`)."""

    data: dict = field(default_factory=lambda: json.loads(json.dumps(DEFAULTS)))
    source: str = "<defaults>"

    @property
    def settings(self) -> Settings:
        return to_settings(self.data)

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
        d["broker"]["message_keys"] = [
            str(k).partition(":")[0] + ":***" for k in d["broker"].get("message_keys") or []
        ]
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


_TYPE_CHECKS = ("type", "enum", "anyOf", "additionalProperties")


def _schema_errors(d: dict, kinds: tuple[str, ...] | None) -> None:
    """Errors against the schema (only the validators in ``kinds``; None: all); the first
    one raises, naming its dotted field and what the field is for."""
    validator = SchemaValidator(SCHEMA)  # jsonschema's rules without its import cost
    errors = sorted(
        (e for e in validator.iter_errors(d) if kinds is None or e.validator in kinds),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or "<top>"
        sub = SCHEMA
        for part in e.absolute_path:
            sub = sub.get("properties", {}).get(part, sub.get("additionalProperties") or {})
        want = sub.get("description", "")
        raise ConfigError(
            f"{where}: {e.message}"
            + (f" (expected: {want})" if want else "")
            + "; see `dingskill schema config`"
        )


def _validate(d: dict) -> None:
    _schema_errors(d, _TYPE_CHECKS)  # types first: the checks below rely on them
    _checks(d)
    _schema_errors(d, None)  # then ranges and patterns the checks did not word themselves


def _checks(d: dict) -> None:
    """Rules a schema does not express (files exist, fields that go together), worded per
    section by its owner."""
    port = d["server"]["port"]
    if not 0 <= port <= 65535:
        raise ConfigError(f"server.port: {port} is not a port (0-65535)")
    gct = d["processes"]["gc_thresholds"]
    if (
        not isinstance(gct, list)
        or len(gct) != 3
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in gct)
    ):
        raise ConfigError(
            f"processes.gc_thresholds: three integers >= 1 (gen0, gen1, gen2), got {gct!r}"
        )
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
    rep = d["report"]
    if rep["daily_at"] is not None and not re.fullmatch(
        r"([01]\d|2[0-3]):[0-5]\d", str(rep["daily_at"])
    ):
        raise ConfigError(f"report.daily_at: {rep['daily_at']!r} is not HH:MM (UTC)")
    if rep["post"] and not rep["open_conversation_id"]:
        raise ConfigError("report.open_conversation_id: required when report.post is true")
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
