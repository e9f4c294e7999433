"""One HTTP client library in the package: aiohttp for async calls, the standard library
behind ``dingskill.http_sync`` for blocking ones (httpx is a test-only dependency); the
blocking helper connects only where ``connect_to`` says, by name, and hands back redirects
and error statuses as answers."""

from __future__ import annotations

import ast
from pathlib import Path

import dingskill
import pytest
from dingskill import http_sync
from dingskill.download import read_capped

from .hostile import Recorder

PACKAGE = Path(dingskill.__file__).parent


def test_the_package_imports_no_httpx():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "httpx" or n.startswith("httpx.") for n in names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == [], f"httpx imported by the package (use aiohttp or http_sync): {offenders}"


@pytest.fixture
def server():
    with Recorder() as s:
        yield s


def test_blocking_requests_connect_where_told_by_name(server):
    port = server.server_address[1]
    asked = []

    def connect_to(host: str, port: int) -> str:
        asked.append((host, port))
        return "127.0.0.1"

    r = http_sync.get(f"http://pinned.invalid:{port}/x?q=1", connect_to=connect_to, timeout=10)
    assert r.status == 200 and r.json()["path"] == "/x?q=1"
    assert asked == [("pinned.invalid", port)]
    assert server.requests[-1]["headers"]["Host"] == f"pinned.invalid:{port}"

    def refuse(host: str, port: int) -> str:
        raise PermissionError(f"{host} refused here")

    before = len(server.requests)
    with pytest.raises(PermissionError, match="pinned.invalid refused here"):
        http_sync.get(f"http://pinned.invalid:{port}/y", connect_to=refuse)
    assert len(server.requests) == before  # nothing left the process


def test_redirects_statuses_errors_and_caps(server):
    target = f"{server.url}/redirect?to={server.url}/landed"
    r = http_sync.get(target, follow_redirects=False)
    assert r.status == 302 and r.is_redirect and r.headers["location"].endswith("/landed")
    assert http_sync.get(target).json()["path"] == "/landed"
    posted = http_sync.post(server.url + "/p", json={"文本": "你好"})
    assert posted.status == 200 and server.requests[-1]["body"] == '{"文本": "你好"}'.encode()
    with http_sync.stream("GET", server.url + "/ok") as resp:
        with pytest.raises(ValueError, match="declared 27, over 10"):
            read_capped(resp, 10, lambda size: ValueError(f"declared {size}, over 10"))
    with http_sync.stream("GET", server.url + "/ok") as resp:
        assert read_capped(resp, 1000, ValueError) == b'{"ok": true, "path": "/ok"}'
    with pytest.raises(http_sync.HttpError, match=r"GET http://127.0.0.1:9/: .*refused"):
        http_sync.get("http://127.0.0.1:9/", timeout=5)
    with pytest.raises(http_sync.HttpError, match="not a valid URL"):
        http_sync.get("nota url")


_TLS_SCRIPT = r"""
import asyncio, http.server, json, ssl, sys, threading
from dingskill import http_sync
from dingskill.skills.http_action import HttpAction, HttpActionError
from dingskill.skills.outbound import OutboundPolicy

class Ok(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        body = json.dumps({"host": self.headers["Host"]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

out = {}
for name, cert in (("good", sys.argv[1]), ("other", sys.argv[2])):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://localhost:{server.server_address[1]}/x"
    policy = OutboundPolicy(hosts=("localhost",), allow_private=("localhost",))
    try:
        out[name + "_action"] = HttpAction(url=url, retries=0).call_sync({}, policy)["host"]
    except HttpActionError as exc:
        out[name + "_action"] = "error: " + str(exc)
    try:
        r = http_sync.get(url, connect_to=lambda host, port: "127.0.0.1", timeout=10)
        out[name + "_sync"] = r.json()["host"]
    except http_sync.HttpError as exc:
        out[name + "_sync"] = "error: " + str(exc)
    server.shutdown()
print(json.dumps(out))
"""


def _cert_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and two server certificates it signed: for localhost, for another name."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dingskill test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    paths = []
    for dns in ("localhost", "other.example"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        path = tmp_path / f"{dns}.pem"
        path.write_bytes(
            cert.public_bytes(pem)
            + key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        paths.append(path)
    return tmp_path / "ca.pem", paths[0], paths[1]


def test_tls_is_checked_against_the_name_while_connecting_to_the_checked_address(tmp_path):
    """Both clients connect by name through their address check: the certificate must be the
    name's (a certificate for another name is refused), and the Host header is the name."""
    import json
    import os
    import subprocess
    import sys

    from tests.runtime.harness import timeout_scale

    ca, good, other = _cert_files(tmp_path)
    env = {**os.environ, "SSL_CERT_FILE": str(ca)}  # read when the TLS contexts are made
    proc = subprocess.run(
        [sys.executable, "-c", _TLS_SCRIPT, str(good), str(other)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60 * timeout_scale(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["good_action"].startswith("localhost:"), out
    assert out["good_sync"].startswith("localhost:"), out
    assert "certificate" in out["other_action"].lower(), out
    assert "certificate" in out["other_sync"].lower(), out
