"""``dingskill doctor``: check a machine and a runtime configuration before starting.

Each check gives a :class:`Check` (ok / warn / fail, what was found, what to do); nothing is
changed on the machine. Network checks are bounded by ``timeout_s`` each.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import socket
import sys
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

__all__ = ["Check", "Status", "run_checks"]

MIN_PYTHON = (3, 10)


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass
class Check:
    """One finding: ``name`` (what was checked), ``detail`` (what was found), ``fix``."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.status.value}


def _python() -> Check:
    v = sys.version_info
    found = f"Python {v.major}.{v.minor}.{v.micro} at {sys.executable}"
    if v[:2] < MIN_PYTHON:
        return Check(
            "python",
            Status.FAIL,
            found,
            "install Python >= 3.10 and re-run `make setup` (scripts/setup.sh)",
        )
    return Check("python", Status.OK, found)


def _requirement_names() -> list[str]:
    """The runtime's own requirements (no extras), from the installed metadata."""
    try:
        reqs = metadata.requires("dingskill") or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for req in reqs:
        if "extra ==" in req:
            continue
        names.append(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0])
    return names


def _packages() -> Check:
    try:
        version = metadata.version("dingskill")
    except metadata.PackageNotFoundError:
        return Check(
            "packages",
            Status.FAIL,
            "the dingskill package is not installed in this Python",
            f'{sys.executable} -m pip install -e ".[dev]" (or `make setup`)',
        )
    missing = []
    for name in _requirement_names():
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Check(
            "packages",
            Status.FAIL,
            f"dingskill {version}; missing: {', '.join(missing)}",
            f"{sys.executable} -m pip install -e . (or `make setup`)",
        )
    return Check(
        "packages",
        Status.OK,
        f"dingskill {version} and its {len(_requirement_names())} requirements",
    )


def _config(path) -> tuple[Check, object | None]:
    from .config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        return Check("config", Status.FAIL, str(exc), "fix the field named above"), None
    return Check("config", Status.OK, f"{config.source} is valid"), config


def _redis(url: str, timeout_s: float) -> Check:
    from .config import redact_password

    try:
        import redis
    except ImportError:
        return Check("redis", Status.FAIL, "the redis package is missing", "pip install redis")
    shown = redact_password(url)
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        client.ping()
        info = client.info("server")
        client.close()
    except redis.AuthenticationError as exc:
        return Check(
            "redis",
            Status.FAIL,
            f"Redis at {shown} refused the credentials ({exc})",
            "fix the password in storage.connection_string",
        )
    except (redis.RedisError, OSError) as exc:
        return Check(
            "redis",
            Status.FAIL,
            f"cannot reach Redis at {shown} ({str(exc).splitlines()[0][:160]})",
            "start redis-server there (`redis-server --port PORT`) or fix storage.connection_string",
        )
    return Check("redis", Status.OK, f"Redis {info.get('redis_version', '?')} at {shown}")


def _sqlite(path: str) -> Check:
    parent = Path(path).parent
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return Check(
            "storage",
            Status.FAIL,
            f"SQLite file {path}: {probe} is not writable",
            "point storage.path (or DINGSKILL_HOME) at a writable folder",
        )
    return Check("storage", Status.OK, f"SQLite at {path}")


def _broker(broker: dict, timeout_s: float) -> Check:
    import asyncio

    from .config import redact_password

    shown = redact_password(broker["url"])
    try:
        from .broker.amqp import BrokerUnavailable, connect
    except ImportError as exc:
        return Check(
            "broker", Status.FAIL, f"broker support missing ({exc})", "pip install aio-pika"
        )

    async def probe() -> None:
        conn = await connect(
            {**broker, "connect_timeout_s": timeout_s}, "dingskill-doctor", robust=False
        )
        await conn.close()

    try:
        asyncio.run(asyncio.wait_for(probe(), timeout_s + 1))
    except BrokerUnavailable as exc:
        return Check(
            "broker",
            Status.FAIL,
            str(exc),
            "fix broker.tls or the broker's certificate as the message says "
            "(docs/broker.md, TLS to the broker)"
            if exc.tls
            else "start RabbitMQ there or fix broker.url (user, password, host, port, vhost)",
        )
    except (asyncio.TimeoutError, OSError) as exc:
        return Check(
            "broker",
            Status.FAIL,
            f"cannot reach the broker at {shown} ({type(exc).__name__})",
            "start RabbitMQ there or fix broker.url",
        )
    return Check("broker", Status.OK, f"RabbitMQ at {shown}")


def _credentials(endpoint: str, key: str | None, secret: str | None, timeout_s: float) -> Check:
    if not key or not secret:
        return Check(
            "credentials",
            Status.FAIL,
            "DINGSKILL_APP_KEY / DINGSKILL_APP_SECRET are not set",
            "export DINGSKILL_APP_KEY=... DINGSKILL_APP_SECRET=... (the app's AppKey and "
            "AppSecret from the DingTalk developer console)",
        )
    from .. import http_sync

    url = f"{endpoint.rstrip('/')}/v1.0/oauth2/accessToken"
    try:
        r = http_sync.post(url, json={"appKey": key, "appSecret": secret}, timeout=timeout_s)
    except http_sync.HttpError as exc:
        return Check(
            "credentials",
            Status.FAIL,
            f"cannot reach {endpoint} ({str(exc)[:160]})",
            "check the network / proxy, or channels.enterprise_chat.endpoint",
        )
    if r.status == 200 and "accessToken" in r.text:
        return Check("credentials", Status.OK, f"app {key}: access token granted by {endpoint}")
    try:
        why = r.json().get("message") or r.text[:160]
    except ValueError:
        why = r.text[:160]
    return Check(
        "credentials",
        Status.FAIL,
        f"app {key}: {endpoint} refused the token request (HTTP {r.status}: {why})",
        "copy AppKey and AppSecret again from the developer console (Credentials page)",
    )


def _port(host: str, port: int) -> Check:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return Check(
                "port",
                Status.FAIL,
                f"{host}:{port} is not free ({exc.strerror})",
                "stop what listens there, or pick another port with --port / server.port",
            )
    return Check("port", Status.OK, f"{host}:{port} is free")


def _skills(home: str, require_signature: bool) -> list[Check]:
    from ..skills.packaging import SkillHome

    skill_home = SkillHome(home)
    try:
        installed = skill_home.installed()
    except (OSError, ValueError) as exc:
        return [Check("skills", Status.FAIL, f"{home}: unreadable ({exc})", "check the folder")]
    if not installed:
        return [
            Check(
                "skills",
                Status.WARN,
                f"no skills installed in {home}",
                "dingskill export SKILL_DIR -o dist && dingskill plugins install --source "
                "dist/ID-VERSION.skill --version VERSION",
            )
        ]
    checks = []
    names = ", ".join(f"{s.id} {s.version}" for s in installed)
    checks.append(Check("skills", Status.OK, f"{len(installed)} installed in {home}: {names}"))
    problems = skill_home.verify()
    if problems:
        checks.append(
            Check(
                "skill files",
                Status.FAIL,
                f"{len(problems)} problem(s): {'; '.join(problems[:3])}",
                "re-install the package: dingskill plugins install --source PACKAGE",
            )
        )
    else:
        checks.append(Check("skill files", Status.OK, "every installed file matches its RECORD"))
    unsigned = [s.id for s in installed if not str(s.signature).startswith("trusted")]
    trusted_signing = skill_home.config()["require_signature"] or require_signature
    if unsigned:
        checks.append(
            Check(
                "signatures",
                Status.FAIL if trusted_signing else Status.WARN,
                f"not signed by a trusted key: {', '.join(unsigned)}",
                "export with --sign KEY and trust it (dingskill keys trust KEY.pub), then "
                "re-install"
                + ("" if trusted_signing else " (or keep skills.require_signature off)"),
            )
        )
    else:
        checks.append(Check("signatures", Status.OK, "every skill is signed by a trusted key"))
    checks.append(_late_replies(installed))
    return checks


def _late_replies(installed) -> Check:
    """Skills with slow actions (HTTP, handlers) but without the permission late replies need."""
    from ..skills.manifest import parse_manifest
    from .late_replies import late_reply_warning

    warnings = []
    for s in installed:
        path = Path(s.path) / "skill.yaml"
        try:
            manifest = parse_manifest(path.read_text(encoding="utf-8"), str(path))
        except (OSError, ValueError):
            continue  # reported by the skill-files check
        if (w := late_reply_warning(manifest)) is not None:
            warnings.append(w)
    if warnings:
        return Check(
            "late replies",
            Status.WARN,
            " | ".join(warnings),
            "add 'qyapi_robot_sendmsg' to 'permissions' in the skill.yaml of each skill named, "
            "then export and install it again",
        )
    return Check(
        "late replies",
        Status.OK,
        "every skill with HTTP actions or handlers may reply after its webhook is gone",
    )


def _mentions_broker(path) -> bool:
    """Whether the configuration file has a ``broker`` section (the split deployment)."""
    if path is None:
        return False
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "broker" in data


def run_checks(config_path=None, timeout_s: float = 5.0, broker: bool | None = None) -> list[Check]:
    """Every check, in the order a newcomer meets the problems. ``broker`` None: checked
    when the configuration file has a ``broker`` section."""
    from .channels.stream import DEFAULT_ENDPOINT

    checks = [_python(), _packages()]
    config_check, config = _config(config_path)
    checks.append(config_check)
    if config is None:
        return checks
    if config.get("storage.type") == "redis":
        checks.append(_redis(config.get("storage.connection_string"), timeout_s))
    elif config.get("storage.type") == "sqlite":
        checks.append(_sqlite(config.get("storage.path")))
    if broker or (broker is None and _mentions_broker(config_path)):
        checks.append(_broker(config.get("broker"), timeout_s))
    chat = config.get("channels.enterprise_chat")
    if chat.get("enabled", True):
        endpoint = (
            chat.get("endpoint") or os.environ.get("DINGTALK_OPENAPI_ENDPOINT") or DEFAULT_ENDPOINT
        )
        auth = chat.get("auth") or {}
        checks.append(
            _credentials(endpoint, auth.get("app_key"), auth.get("app_secret"), timeout_s)
        )
    checks.append(_port(config.get("server.host"), config.get("server.port")))
    checks += _skills(config.get("skills.home"), bool(config.get("skills.require_signature")))
    return checks
