"""The `broker:` section: field-by-field errors, secrets from the environment, redaction, and
the one-line error of an unreachable broker (no broker needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from dingskill.runtime.broker.amqp import Topology, _ssl_context, shard_of
from dingskill.runtime.config import ConfigError, load_config


def _load(tmp_path, broker: dict, environ: dict | None = None):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"broker": broker}))
    return load_config(p, environ=environ or {})


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        ({"url": "http://x/"}, "broker.url: expected amqp://"),
        ({"shards": 0}, "broker.shards: 0 is out of range (1-1024)"),
        ({"prefetch": "10"}, "broker.prefetch: '10' is not of type 'integer'"),
        ({"max_attempts": 0}, "broker.max_attempts: 0 is out of range"),
        ({"queue": "a b"}, "broker.queue: 'a b' must be letters"),
        ({"retry_delay_s": 5, "retry_max_delay_s": 1}, "broker.retry_max_delay_s: must be >="),
        ({"tls": {"ca_path": "/nope.pem"}}, "broker.tls.ca_path: file /nope.pem not found"),
        ({"colour": 1}, "broker.colour: unknown field"),
    ],
)
def test_field_errors(tmp_path, broker, message):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, broker)
    assert message in str(err.value) and str(tmp_path / "c.json") in str(err.value)


def test_url_from_environment_and_redacted(tmp_path):
    cfg = _load(
        tmp_path, {}, {"DINGSKILL_BROKER_URL": "amqps://bot:s3cret@mq.example.com:5671/prod"}
    )
    assert cfg.get("broker.url").startswith("amqps://bot:s3cret@")
    assert cfg.redacted()["broker"]["url"] == "amqps://bot:***@mq.example.com:5671/prod"
    assert "s3cret" not in repr(cfg)


def test_topology_names_and_back_off_levels():
    t = Topology("q", 4, 5, 0.5, 3.0)
    assert t.shard_queues == ["q.0", "q.1", "q.2", "q.3"]
    assert t.retry_delays == [0.5, 1.0, 2.0, 3.0]
    assert [t.retry_exchange(n) for n in (1, 2, 4, 9)] == [
        "q.retry.0",
        "q.retry.1",
        "q.retry.3",
        "q.retry.3",
    ]
    # the same conversation lands on the same shard in every process
    assert shard_of("cid-对话-1", 16) == shard_of("cid-对话-1", 16) < 16


def test_tls_context_verifies_by_default():
    import ssl

    ctx = _ssl_context({})
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert _ssl_context({"verify": False}).verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize("command", ["worker", "dlq"])
def test_unreachable_broker_is_one_line_naming_the_url(tmp_path, command):
    from dingskill.runtime.broker.node import _free_port

    port = _free_port()
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "broker": {"url": f"amqp://bot:s3cret@127.0.0.1:{port}/", "connect_timeout_s": 3},
                "storage": {"type": "memory"},
                "server": {"port": _free_port()},
                "skills": {"home": str(tmp_path / "home")},
                "audit": {"path": str(tmp_path / "audit" / "m.jsonl")},
            }
        )
    )
    args = (
        [command, "--config", str(cfg)]
        if command != "dlq"
        else ["dlq", "list", "--config", str(cfg)]
    )
    from dingskill.security.rbac import AccessControl

    env = {
        **os.environ,
        "DINGSKILL_BROKER_KEYS": "k1:0123456789abcdef-test",  # message keys: not the question
        "DINGSKILL_TOKEN": AccessControl(tmp_path / "home" / "access.json").create_token(
            "t", "admin"
        ),
    }
    out = subprocess.run(
        [sys.executable, "-m", "dingskill.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines == [lines[-1]] and lines[0].startswith(
        f"error: cannot reach the broker at amqp://bot:***@127.0.0.1:{port}/"
    ), out.stderr
    assert "s3cret" not in out.stderr + out.stdout


def test_tls_files_that_do_not_load_name_the_field(tmp_path):
    from dingskill.runtime.broker.amqp import BrokerUnavailable

    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(BrokerUnavailable, match=r"broker\.tls\.ca_path: cannot load CA .*ca\.pem"):
        _ssl_context({"ca_path": str(junk)})
    with pytest.raises(BrokerUnavailable, match=r"broker\.tls\.cert_path/key_path: .*ca\.pem"):
        _ssl_context({"cert_path": str(junk), "key_path": str(junk)})
