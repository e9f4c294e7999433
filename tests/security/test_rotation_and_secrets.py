"""`dingskill keys rotate` re-encrypts stored data; a full runtime run never prints a secret;
TLS 1.1 is refused by the runtime's HTTPS server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from dingskill.cli.main import main
from dingskill.runtime.stores import SqliteStore
from dingskill.security.audit_chain import AuditChain
from dingskill.security.crypto import Keyring

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.runtime.harness import RuntimeProcess, free_port, wait_until  # noqa: E402


def test_keys_rotate_reencrypts_sqlite_and_audit(tmp_path, capsys):
    key_file = tmp_path / "keys.json"
    assert main(["keys", "rotate", "--key-file", str(key_file)]) == 0  # creates k1
    old = Keyring.from_file(key_file)
    cfg = tmp_path / "runtime.json"
    cfg.write_text(
        json.dumps(
            {
                "storage": {"type": "sqlite", "path": str(tmp_path / "rt.db")},
                "audit": {"path": str(tmp_path / "audit" / "messages.jsonl")},
            }
        )
    )

    async def seed():
        s = SqliteStore(tmp_path / "rt.db", keyring=old)
        await s.connect()
        await s.set_context("c1", {"note": "年假三天"})
        await s.add_audit({"actor": "staff-1"})
        await s.close()

    asyncio.run(seed())
    AuditChain(tmp_path / "audit" / "messages.jsonl", keyring=old).append(
        {"actor": "staff-2", "operation": "message"}
    )
    assert (
        main(
            [
                "keys",
                "rotate",
                "--key-file",
                str(key_file),
                "--config",
                str(cfg),
                "--home",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert "re-encrypted 3 stored value(s)" in capsys.readouterr().out
    new = Keyring.from_file(key_file)
    assert new.active != old.active and old.active in new.key_ids
    only_new = Keyring({new.active: new._keys[new.active]}, new.active)

    async def check():
        s = SqliteStore(tmp_path / "rt.db", keyring=only_new)
        assert (await s.get_context("c1"))["note"] == "年假三天"
        assert (await s.read_audit())[0]["actor"] == "staff-1"
        await s.close()

    asyncio.run(check())
    chain = AuditChain(tmp_path / "audit" / "messages.jsonl", keyring=only_new)
    assert chain.verify() == [] and next(chain.records())["actor"] == "staff-2"


SECRET = "Sup3r-Secret-AppSecret-7x9"
DATA_KEY_B64 = "q" * 43 + "="


def test_no_secret_in_any_output_of_a_full_run(tmp_path):
    import base64

    from dingskill.emulator import Emulator
    from dingskill.skills import Skill
    from dingskill.skills.packaging import SkillHome

    data_key = base64.b64encode(os.urandom(32)).decode()
    home = tmp_path / "home"
    SkillHome(home).install(Skill.load(ROOT / "skills" / "hr-assistant").export(tmp_path / "dist"))
    emu = Emulator({"dingsecretapp": SECRET})
    emu.start()
    try:
        rt = RuntimeProcess(
            tmp_path / "rt",
            home,
            emu.url,
            app=("dingsecretapp", SECRET),
            extra={"logging": {"level": "DEBUG"}},
            env={"DINGSKILL_DATA_KEYS": f"k1:{data_key}"},
        ).start()
        emu.wait_connections(1)
        for text in [
            "我想请假",
            "年假",
            "明天",
            "两天",
            "/skills",
            f"my secret is not {SECRET[:4]}",
        ]:
            emu.wait_reply(emu.send(text))
        metrics = rt.metrics()
        printed = subprocess.run(
            [
                sys.executable,
                "-m",
                "dingskill.cli.main",
                "run",
                "--config",
                str(rt.config_path),
                "--print-config",
            ],
            env=rt.env,
            capture_output=True,
            text=True,
        ).stdout
        rt.stop()
    finally:
        emu.stop()
    outputs = {"metrics": metrics, "print-config": printed}
    for path in (tmp_path / "rt").rglob("*"):
        if path.is_file():
            outputs[str(path)] = path.read_bytes().decode("utf-8", "replace")
    for path in home.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".log"):
            outputs[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    assert len(outputs) >= 4
    for name, text in outputs.items():
        assert SECRET not in text, name
        assert data_key not in text, name
    audit = (tmp_path / "rt" / "audit" / "messages.jsonl").read_bytes()
    assert "年假".encode() not in audit  # records are sealed with the data key


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tmp_path / "tls.crt", tmp_path / "tls.key"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_is_refused_and_1_2_works(tmp_path):
    cert, key = _self_signed(tmp_path)
    port = free_port()
    cfg = tmp_path / "tls.json"
    cfg.write_text(
        json.dumps(
            {
                "server": {
                    "port": port,
                    "ssl": {"enabled": True, "cert_path": str(cert), "key_path": str(key)},
                },
                "channels": {"enterprise_chat": {"mode": "webhook"}},
                "skills": {"home": str(tmp_path / "home")},
                "audit": {"path": str(tmp_path / "audit" / "m.jsonl")},
            }
        )
    )
    env = {**os.environ, "DINGSKILL_APP_KEY": "k", "DINGSKILL_APP_SECRET": "tls-test-secret"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dingskill.cli.main", "run", "--config", str(cfg)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def up():
            try:
                return (
                    httpx.get(
                        f"https://127.0.0.1:{port}/healthz",
                        verify=ssl.create_default_context(cafile=str(cert)),
                        timeout=1,
                    ).status_code
                    == 200
                )
            except httpx.HTTPError:
                return proc.poll() is not None and pytest.fail("runtime exited")

        wait_until(up, 30, what="https /healthz")
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        try:
            old.minimum_version = ssl.TLSVersion.TLSv1_1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            pytest.fail("this OpenSSL cannot even offer TLS 1.1")
        assert _client_can_speak_tls11(old, cert, key)  # control: the refusal is the server's
        with pytest.raises((ssl.SSLError, OSError)):
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with old.wrap_socket(raw, server_hostname="127.0.0.1"):
                    pass
        modern = ssl.create_default_context(cafile=str(cert))
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with modern.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        proc.terminate()
        proc.wait(20)


def _client_can_speak_tls11(client: ssl.SSLContext, cert, key) -> bool:
    import socket
    import threading

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    server.minimum_version = ssl.TLSVersion.TLSv1_1
    server.set_ciphers("ALL:@SECLEVEL=0")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve():
        conn, _ = listener.accept()
        try:
            server.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=5) as raw:
            with client.wrap_socket(raw) as tls:
                return tls.version() == "TLSv1.1"
    finally:
        listener.close()
