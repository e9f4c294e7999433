"""A private ``rabbitmq-server`` node for tests and benchmarks: its own node name, free AMQP
and distribution ports, data, log and config files in one directory, and its own Erlang
cookie (``HOME`` points into the directory), so parallel nodes never clash with each other or
with the Debian package's system service (which it does not use).

With ``tls=`` (a :class:`NodeTLS`: the server's certificate, key and the CA it trusts for
client certificates) the node also listens for AMQP over TLS (``amqps://``) on a second free
port; :attr:`RabbitNode.amqps_url` names it by ``localhost``, so the server certificate must
list that name."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NodeTLS", "RabbitNode", "find_rabbitmq"]

_LIB = Path("/usr/lib/rabbitmq")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_rabbitmq() -> Path:
    """The directory holding ``rabbitmq-server`` and ``rabbitmqctl`` run as the current user
    (the Debian package's ``/usr/sbin`` wrappers switch to the ``rabbitmq`` user)."""
    for d in (_LIB / "bin", Path("/usr/local/lib/rabbitmq/bin")):
        if (d / "rabbitmq-server").exists():
            return d
    exe = shutil.which("rabbitmq-server")
    if exe is None:
        raise RuntimeError(
            "rabbitmq-server not found: run `make setup` (scripts/setup.sh installs the "
            "Debian package rabbitmq-server)"
        )
    return Path(exe).parent


def _plugins_dir(bin_dir: Path) -> str | None:
    libs = sorted((bin_dir.parent / "lib").glob("rabbitmq_server-*/plugins"))
    return str(libs[-1]) if libs else None


@dataclass(frozen=True)
class NodeTLS:
    """The TLS listener's files (PEM) and how it treats client certificates.

    ``verify_peer``: ask clients for a certificate and check any that is sent against
    ``cacertfile``; ``fail_if_no_peer_cert``: refuse clients without one (mutual TLS)."""

    certfile: Path
    keyfile: Path
    cacertfile: Path
    verify_peer: bool = True
    fail_if_no_peer_cert: bool = False

    def config_lines(self, port: int) -> str:
        """The ``rabbitmq.conf`` lines of a TLS listener on ``127.0.0.1:port``."""
        for f in (self.certfile, self.keyfile, self.cacertfile):
            if not Path(f).is_file():
                raise FileNotFoundError(f"TLS file for rabbitmq-server not found: {f}")
        return (
            f"listeners.ssl.default = 127.0.0.1:{port}\n"
            f"ssl_options.cacertfile = {self.cacertfile}\n"
            f"ssl_options.certfile = {self.certfile}\n"
            f"ssl_options.keyfile = {self.keyfile}\n"
            f"ssl_options.verify = {'verify_peer' if self.verify_peer else 'verify_none'}\n"
            f"ssl_options.fail_if_no_peer_cert = {str(self.fail_if_no_peer_cert).lower()}\n"
        )


class RabbitNode:
    """Start with :meth:`start` (returns at once), wait with :meth:`wait_ready`, end with
    :meth:`stop`. Register :meth:`stop` for clean-up before waiting."""

    def __init__(self, workdir: Path, port: int | None = None, tls: NodeTLS | None = None) -> None:
        self.bin = find_rabbitmq()
        self.dir = Path(workdir)
        self.name = f"dingskill-{uuid.uuid4().hex[:10]}@localhost"
        self.port = port or _free_port()
        self.dist_port = _free_port()
        # a private Erlang port mapper daemon: the node's `erl` starts one detached (it
        # outlives the node's process group), on this port so :meth:`stop` ends ours only
        self.epmd_port = _free_port()
        self.tls = tls
        self.tls_port = _free_port() if tls is not None else None
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "server.log"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def amqps_url(self) -> str:
        """The TLS listener's URL (host ``localhost``: the name the server certificate must
        list); only for a node started with ``tls=``."""
        if self.tls_port is None:
            raise RuntimeError(
                "this RabbitNode has no TLS listener: create it with tls=NodeTLS(...)"
            )
        return f"amqps://guest:guest@localhost:{self.tls_port}/"

    def env(self) -> dict:
        d = self.dir
        plugins = _plugins_dir(self.bin)
        env = {
            **os.environ,
            "HOME": str(d),  # the Erlang cookie lives here: one per node
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            "RABBITMQ_LOGS": "-",
            "ERL_EPMD_PORT": str(self.epmd_port),
        }
        if plugins:
            env["RABBITMQ_PLUGINS_DIR"] = plugins
        return env

    def start(self) -> RabbitNode:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "log.console = true\nlog.console.level = warning\nlog.file = false\n"
            # small disk/memory of a test machine: never block publishers for it
            "disk_free_limit.absolute = 1MB\nvm_memory_high_watermark.relative = 0.9\n"
            + (self.tls.config_lines(self.tls_port) if self.tls is not None else "")
        )
        (self.dir / "advanced.config").write_text("[].\n")
        (self.dir / "enabled_plugins").write_text("[].\n")  # management off: not needed
        self.proc = subprocess.Popen(
            [str(self.bin / "rabbitmq-server")],
            env=self.env(),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 60.0) -> RabbitNode:
        """Until an AMQP handshake succeeds (the node accepts clients)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"rabbitmq-server exited {self.proc.returncode}:\n{self.output()}"
                )
            if _amqp_handshake(self.port) and (self.tls_port is None or _accepts(self.tls_port)):
                return self
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"rabbitmq-server not ready on port {self.port} within {timeout:.0f} s:\n"
                    f"{self.output()}"
                )
            time.sleep(0.1)

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self, timeout: float = 30.0) -> None:
        """``rabbitmqctl stop`` (clean), then SIGKILL of the process group if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.ctl("stop", timeout=timeout)
            except (subprocess.TimeoutExpired, OSError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        else:
            try:  # epmd-independent children (erl_child_setup) of this node's group
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc = None
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        """End the port mapper this node started (``epmd -port N -kill``: only ours)."""
        epmd = shutil.which("epmd") or next(
            iter(sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))), None
        )
        if epmd is None:
            return
        try:
            subprocess.run(
                [str(epmd), "-port", str(self.epmd_port), "-kill"],
                env=self.env(),
                capture_output=True,
                timeout=10,
            )
        except (subprocess.TimeoutExpired, OSError):
            pass

    def restart(self, timeout: float = 90.0) -> RabbitNode:
        """Stop cleanly and start again with the same name, ports and data (messages kept)."""
        self.stop()
        return self.start().wait_ready(timeout)


def _amqp_handshake(port: int) -> bool:
    """True when the node answers the AMQP 0-9-1 protocol header with Connection.Start."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            s.settimeout(2)
            head = s.recv(7)
            return len(head) == 7 and head[0] == 1  # a METHOD frame (Connection.Start)
    except OSError:
        return False


def _accepts(port: int) -> bool:
    """True when something accepts TCP connections on ``127.0.0.1:port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
