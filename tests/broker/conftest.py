"""One rabbitmq-server node and one redis-server for the whole session; a fresh queue name
(and a flushed Redis) per test, so tests share the servers but not their messages.

The node listens for plain AMQP and for AMQP over TLS (``rabbit.amqps_url``) with a server
certificate from a throw-away CA made for the session (``pki``): one node start serves both."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from dingskill.emulator import Emulator
from dingskill.skills import Skill
from dingskill.skills.packaging import SkillHome

from .certs import Issued, TestCA
from .harness import APP, Service, scale

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PKI:
    """The session's TLS material: ``ca`` signed ``server`` (for ``localhost`` only, so
    ``127.0.0.1`` is a name mismatch) and ``client``; ``rogue_client`` comes from another CA."""

    ca: TestCA
    server: Issued
    client: Issued
    rogue_client: Issued


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    ca = TestCA.create(d / "ca")
    rogue = TestCA.create(d / "rogue", "rogue CA")
    return PKI(
        ca,
        ca.issue(d / "server", "server", ["localhost"]),
        ca.issue(d / "client", "client", ["dingskill-worker-7"], client=True),
        rogue.issue(d / "rogue", "client", ["dingskill-worker-7"], client=True),
    )


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory, pki):
    from dingskill.runtime.broker.node import NodeTLS, RabbitNode

    # client certificates are checked when sent, not required (plain TLS clients connect too)
    tls = NodeTLS(pki.server.cert, pki.server.key, pki.ca.cert, fail_if_no_peer_cert=False)
    try:
        node = RabbitNode(tmp_path_factory.mktemp("rabbit"), tls=tls)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    node.start()
    try:
        yield node.wait_ready(90 * scale())
    finally:
        node.stop()


@pytest.fixture(scope="session")
def redis_srv(tmp_path_factory):
    import importlib.util

    from dingskill.runtime.broker.node import _free_port  # noqa: F401 - same free-port helper

    spec = importlib.util.spec_from_file_location(
        "runtime_harness", ROOT / "tests" / "runtime" / "harness.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    server = mod.RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def skills_home(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    home = tmp_path_factory.mktemp("home")
    h = SkillHome(home)
    for name in ("hr-assistant", "it-helpdesk"):
        h.install(
            Skill.load(ROOT / "skills" / name).export(dist),
            trust=True,
            allow_hosts=["127.0.0.1", "helpdesk.example.com"] if name == "it-helpdesk" else None,
        )
    return home


@pytest.fixture(scope="session")
def admin_token(skills_home) -> str:
    """An admin API token of the skills home (the `dlq` commands need the admin role)."""
    from dingskill.security.rbac import AccessControl

    return AccessControl(skills_home / "access.json").create_token("broker-tests", "admin")


@pytest.fixture(scope="session")
def hanging_home(tmp_path_factory) -> Path:
    """The IT help-desk skill whose password-reset handler hangs (sleeps 30 s; the runtime's
    handler timeout cuts it off)."""
    import shutil

    base = tmp_path_factory.mktemp("hanging")
    (base / "datasets").symlink_to(ROOT / "datasets")
    src = base / "skills" / "it-helpdesk"
    shutil.copytree(ROOT / "skills" / "it-helpdesk", src)
    (src / "handlers.py").write_text(
        "import time\n\n\n"
        "def password_reset(message, slots, context):\n"
        "    time.sleep(30)\n"
        "    return {'text': 'too late'}\n"
    )
    home = base / "home"
    SkillHome(home).install(
        Skill.load(src).export(base / "dist"),
        trust=True,
        allow_hosts=["127.0.0.1", "helpdesk.example.com"],
    )
    return home


@pytest.fixture
def emulator():
    emu = Emulator({APP[0]: APP[1]}, ack_timeout=2.0, max_attempts=30)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def stack(tmp_path, rabbit, redis_srv, skills_home, emulator, admin_token):
    """Starts services against this test's queue; stops (kills) them all at the end."""
    import redis

    redis.Redis(port=redis_srv.port).flushdb()
    queue = f"t{uuid.uuid4().hex[:8]}"
    started: list[Service] = []

    class Stack:
        def __init__(self) -> None:
            self.queue, self.rabbit, self.redis, self.emulator = queue, rabbit, redis_srv, emulator
            self.dir = tmp_path
            self.broker = {
                "url": rabbit.url,
                "queue": queue,
                "shards": 4,
                "prefetch": 16,
                "max_attempts": 4,
                "retry_delay_s": 0.2,
                "retry_max_delay_s": 1.0,
            }

        def config(self, **over) -> dict:
            cfg = {
                "storage": {"type": "redis", "connection_string": redis_srv.url},
                "channels": {"enterprise_chat": {"mode": "stream", "endpoint": emulator.url}},
                "skills": {"home": str(skills_home), "reload_interval_s": 5},
                "audit": {"path": str(tmp_path / "audit" / "messages.jsonl")},
                "limits": {
                    "user_per_minute": 0,
                    "conversation_per_minute": 0,
                    "global_per_second": 0,
                },
                "broker": dict(self.broker),
                "logging": {"level": "WARNING"},
            }
            for k, v in over.items():
                cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
            return cfg

        def start(self, command: str, wait: bool = True, env: dict | None = None, **over):
            svc = Service(command, tmp_path / f"{command}{len(started)}", self.config(**over), env)
            started.append(svc)  # registered for clean-up before waiting on it
            svc.start()
            return svc.wait_ready() if wait else svc

        def started(self) -> list[Service]:
            return list(started)

        def cli(self, *args, config, token: str | None = admin_token):
            """``dingskill ARGS --config CONFIG`` as the operator holding ``token`` (admin by
            default; None: no token) with the services' AppKey/AppSecret."""
            import os
            import subprocess
            import sys

            env = {**os.environ, "DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}
            env.pop("DINGSKILL_TOKEN", None)
            if token:
                env["DINGSKILL_TOKEN"] = token
            return subprocess.run(
                [sys.executable, "-m", "dingskill.cli.main", *args, "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )

        def signed(self, body: bytes, msg_id: str, channel: str = "stream") -> dict:
            """The headers a gateway of this stack would add to a message."""
            from dingskill.runtime.broker.auth import MessageKeys
            from dingskill.runtime.config import load_config

            keys = MessageKeys.from_config(load_config(environ={"DINGSKILL_APP_SECRET": APP[1]}))
            return keys.sign(body, msg_id, channel)

    yield Stack()
    for s in started:
        s.stop("kill")
