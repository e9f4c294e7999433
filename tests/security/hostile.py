"""Helpers of the hostile-input suite: a recording HTTP server on 127.0.0.1 and tiny skill
packages built from a manifest (trained on a handful of utterances, exported for real)."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import threading
from pathlib import Path

import yaml

DATA = "text,intent\n" + "".join(
    f"{t},{i}\n"
    for i, texts in {
        "lookup": ["lookup ticket", "find ticket", "look up my ticket", "ticket lookup please"],
        "hello": ["hello there", "hi bot", "good morning", "hey hello"],
    }.items()
    for t in texts
)


class Recorder(http.server.ThreadingHTTPServer):
    """Records every request (path, headers, body); answers by path:

    ``/redirect?to=URL`` 302 to URL, ``/big`` 2 MiB JSON, ``/bomb`` 64 MiB of gzip-ed zeros
    (about 64 KiB on the wire), anything else ``{"ok": true, "path": ...}``."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[dict] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


_BOMB = gzip.compress(b"\0" * (64 * 2**20), compresslevel=9)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        if self.path.startswith("/redirect?to="):
            from urllib.parse import unquote

            self.send_response(302)
            self.send_header("Location", unquote(self.path.split("=", 1)[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/bomb"):
            data, extra = _BOMB, {"Content-Encoding": "gzip"}
        elif self.path.startswith("/big"):
            data, extra = b'{"x": "' + b"a" * (2 * 2**20) + b'"}', {}
        else:
            data, extra = json.dumps({"ok": True, "path": self.path}).encode(), {}
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


def skill_folder(root: Path, manifest: dict, handlers: str | None = None) -> Path:
    """A small skill source folder with ``manifest`` merged over a valid base."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.csv").write_text(DATA, encoding="utf-8")
    (root / "CHANGELOG.md").write_text("# 1.0.0\n- first\n", encoding="utf-8")
    base = {
        "id": "com.example.hostile",
        "name": "hostile",
        "version": "1.0.0",
        "languages": ["en"],
        "dataset": {"train": "data.csv"},
        "classifier": {"embeddings": None},
        "triggers": [{"intent": "lookup", "words": ["lookup"]}],
        "intents": {"lookup": {"template": "ok"}, "hello": {"template": "hi"}},
    }
    base.update(manifest)
    (root / "skill.yaml").write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")
    if handlers is not None:
        (root / "handlers.py").write_text(handlers)
    return root


def export(root: Path, manifest: dict) -> Path:
    from dingskill.skills import Skill

    return Skill.load(skill_folder(root, manifest)).export(root / "dist")


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes (to prove a refusal changed nothing)."""
    out = {}
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if p.name != "lock":
                out[str(p.relative_to(path))] = p.read_bytes()
    return out
