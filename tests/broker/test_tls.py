"""AMQP over TLS (``amqps://``) against the session's real rabbitmq-server TLS listener: the
server certificate is checked against ``broker.tls.ca_path`` (or not, with ``verify: false``),
its host name too, and a client certificate (mutual TLS) reaches the broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

import pytest
from dingskill.runtime.broker.amqp import BrokerUnavailable, connect

from .harness import scale

pytestmark = [pytest.mark.broker]


def _broker(url: str, **tls) -> dict:
    return {"url": url, "connect_timeout_s": 10 * scale(), "tls": tls}


def _connections(rabbit) -> list[dict]:
    """The broker's own view of its client connections (``name``: the connection name the
    client gave)."""
    fields = ["client_properties", "ssl", "ssl_protocol", "peer_cert_subject"]
    out = rabbit.ctl("list_connections", *fields, "--formatter", "json", timeout=60 * scale())
    assert out.returncode == 0, out.stdout + out.stderr
    seen = []
    for c in json.loads(out.stdout):
        props = {k: v for k, _type, v in c.pop("client_properties")}
        seen.append({**c, "name": props.get("connection_name", "")})
    return seen


async def _round_trip(sender, receiver, text: str) -> str:
    """Publish ``text`` on ``sender`` to a fresh queue, take it back on ``receiver``."""
    import aio_pika

    name = f"tls-{uuid.uuid4().hex[:8]}"
    ch_in = await receiver.channel()
    queue = await ch_in.declare_queue(name, auto_delete=True)
    ch_out = await sender.channel()
    await ch_out.default_exchange.publish(
        aio_pika.Message(text.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT), name
    )
    async with queue.iterator(timeout=10 * scale()) as it:
        async for msg in it:
            await msg.ack()
            return msg.body.decode()
    raise AssertionError("no message")


def test_amqps_publishes_and_consumes_over_verified_tls(rabbit, pki):
    """(1) CA given: a message goes through, on connections the broker reports as TLS; (4) a
    client certificate (cert_path/key_path) is presented and accepted (mutual TLS)."""
    url = rabbit.amqps_url
    assert url.startswith("amqps://") and f":{rabbit.tls_port}/" in url

    async def main():
        plain_tls = await connect(_broker(url, ca_path=str(pki.ca.cert)), "tls-ca", robust=False)
        mutual = await connect(
            _broker(
                url,
                ca_path=str(pki.ca.cert),
                cert_path=str(pki.client.cert),
                key_path=str(pki.client.key),
            ),
            "tls-mutual",
        )
        try:
            assert await _round_trip(plain_tls, mutual, "你好, TLS") == "你好, TLS"
            return await asyncio.to_thread(_connections, rabbit)
        finally:
            await plain_tls.close()
            await mutual.close()

    seen = {c["name"]: c for c in asyncio.run(main())}
    ca_only, mutual = seen["tls-ca"], seen["tls-mutual"]
    assert ca_only["ssl"] is True and ca_only["ssl_protocol"] in ("tlsv1.2", "tlsv1.3"), seen
    assert mutual["ssl"] is True and "CN=dingskill-worker-7" in mutual["peer_cert_subject"], seen
    assert not ca_only["peer_cert_subject"], seen


def _refusal(broker: dict) -> str:
    async def main():
        conn = await connect(broker, "tls-refused", robust=False)
        await conn.close()

    with pytest.raises(BrokerUnavailable) as err:
        asyncio.run(main())
    message = str(err.value)
    assert "\n" not in message and "guest:guest" not in message
    return message


def test_unknown_ca_is_a_one_line_error_and_verify_false_connects(rabbit, tmp_path):
    """(2) Default verification (system CAs only) refuses the test CA's certificate: the CLI
    prints one line naming the URL (password redacted), the reason and the field to set;
    ``verify: false`` connects (encrypted, unauthenticated)."""
    import os

    from dingskill.security.rbac import AccessControl

    cfg = tmp_path / "c.json"
    url = rabbit.amqps_url.replace("guest:guest", "guest:s3cret")  # refused before the login
    cfg.write_text(
        json.dumps(
            {
                "broker": {"url": url, "connect_timeout_s": 10 * scale()},
                "skills": {"home": str(tmp_path / "home")},
                "audit": {"path": str(tmp_path / "audit" / "m.jsonl")},
            }
        )
    )
    admin = AccessControl(tmp_path / "home" / "access.json").create_token("t", "admin")
    out = subprocess.run(
        [sys.executable, "-m", "dingskill.cli.main", "dlq", "list", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120 * scale(),
        env={**os.environ, "DINGSKILL_TOKEN": admin},  # the dlq commands need the admin role
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "s3cret" not in out.stderr + out.stdout
    assert out.stderr.startswith(
        f"error: cannot connect to the broker at amqps://guest:***@localhost:{rabbit.tls_port}/: "
        "TLS certificate verify failed: self-signed certificate in certificate chain; "
        "set broker.tls.ca_path to the CA certificate (PEM)"
    ), out.stderr

    async def unverified():
        conn = await connect(_broker(rabbit.amqps_url, verify=False), "tls-noverify", robust=False)
        try:
            ch = await conn.channel()
            q = await ch.declare_queue(exclusive=True)
            return q.name
        finally:
            await conn.close()

    assert asyncio.run(unverified())


def test_host_name_mismatch_is_refused(rabbit, pki):
    """(3) The certificate names ``localhost``; the same listener reached as ``127.0.0.1``."""
    url = rabbit.amqps_url.replace("@localhost:", "@127.0.0.1:")
    message = _refusal(_broker(url, ca_path=str(pki.ca.cert)))
    assert message.startswith(
        f"cannot connect to the broker at amqps://guest:***@127.0.0.1:{rabbit.tls_port}/: "
        "TLS hostname mismatch: "
    ), message
    assert "certificate is not valid for '127.0.0.1'" in message


def test_client_certificate_of_an_untrusted_ca_is_refused(rabbit, pki):
    """(4) The broker checks a client certificate it is sent against its CA."""
    message = _refusal(
        _broker(
            rabbit.amqps_url,
            ca_path=str(pki.ca.cert),
            cert_path=str(pki.rogue_client.cert),
            key_path=str(pki.rogue_client.key),
        )
    )
    # a TLS 1.2 alert or, under TLS 1.3, a reset right after the handshake: both say why
    assert "broker.tls.cert_path must be signed by a CA the broker trusts" in message, message


def test_wrong_scheme_for_the_port_says_so(rabbit, pki):
    """amqps:// to the plain port, amqp:// to the TLS port: the hint names the fix."""
    tls_to_plain = _refusal(_broker(rabbit.url.replace("amqp://", "amqps://"), verify=False))
    assert "this port does not speak TLS; use amqp://" in tls_to_plain, tls_to_plain
    plain_to_tls = _refusal(_broker(rabbit.amqps_url.replace("amqps://", "amqp://")))
    assert "use amqps://" in plain_to_tls, plain_to_tls


@pytest.mark.redis
def test_gateway_and_worker_over_mutual_tls(stack, pki):
    """A message from the emulator through `dingskill gateway` -> amqps -> `dingskill
    worker` -> reply, both services on TLS connections with their client certificate."""
    tls = {
        "ca_path": str(pki.ca.cert),
        "cert_path": str(pki.client.cert),
        "key_path": str(pki.client.key),
    }
    broker = {"url": stack.rabbit.amqps_url, "tls": tls}
    stack.start("worker", broker=broker)
    stack.start("gateway", broker=broker)
    stack.emulator.wait_connections(1)
    i = stack.emulator.send("工资条", sender_id="staff-tls")
    reply = stack.emulator.wait_reply(i, timeout=20 * scale())
    assert reply.get("text", {}).get("content") or reply.get("markdown", {}).get("text")
    seen = _connections(stack.rabbit)
    for name in ("dingskill-worker", "dingskill-gateway"):
        assert any(
            c["name"] == name and c["ssl"] and "CN=dingskill-worker-7" in c["peer_cert_subject"]
            for c in seen
        ), (name, seen)


def test_doctor_names_the_tls_problem_and_its_fix(rabbit, pki, tmp_path):
    """`dingskill doctor`'s broker check over amqps: FAIL with the TLS reason and a broker.tls
    fix without the CA; OK with it."""
    from dingskill.runtime.broker.node import _free_port
    from dingskill.runtime.doctor import run_checks

    def broker_check(tls: dict):
        cfg = tmp_path / f"doctor-{len(tls)}.json"
        cfg.write_text(
            json.dumps(
                {
                    "broker": {"url": rabbit.amqps_url, "tls": tls},
                    "storage": {"type": "memory"},
                    "channels": {"enterprise_chat": {"enabled": False}},
                    "server": {"port": _free_port()},
                    "skills": {"home": str(tmp_path / "home")},
                }
            )
        )
        checks = {c.name: c for c in run_checks(cfg, timeout_s=10 * scale())}
        return checks["broker"]

    failed = broker_check({})
    assert failed.status.value == "fail", failed
    assert (
        "TLS certificate verify failed" in failed.detail and "broker.tls.ca_path" in failed.detail
    )
    assert "broker.tls" in failed.fix and "guest:guest" not in failed.detail
    ok = broker_check({"ca_path": str(pki.ca.cert)})
    assert ok.status.value == "ok", ok
