"""A real local help-desk HTTP API for the tests: files tickets, lists them, and can be told
to be slow or to fail (500) for the next N requests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class HelpdeskServer:
    def __init__(self) -> None:
        self.tickets: list[dict] = []
        self.requests: list[dict] = []
        self.fail_next = 0
        self.slow_next = 0
        self.slow_seconds = 3.0
        self.assignee: str | None = None  # the staff id new tickets are assigned to, if any
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout is shorter than a slow answer)

            def _gate(self) -> bool:
                with server._lock:
                    server.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "auth": self.headers.get("Authorization"),
                        }
                    )
                    if server.slow_next > 0:
                        server.slow_next -= 1
                        slow = True
                    else:
                        slow = False
                    if server.fail_next > 0:
                        server.fail_next -= 1
                        self._reply(500, {"error": "database unavailable"})
                        return False
                if slow:
                    time.sleep(server.slow_seconds)
                return True

            def do_POST(self):
                if not self._gate():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server._lock:
                    tid = f"INC-{1001 + len(server.tickets)}"
                    server.tickets.append({"id": tid, "status": "处理中", **body})
                ticket = {"id": tid, "eta_hours": 4}
                if server.assignee:
                    ticket["assignee"] = server.assignee
                self._reply(201, {"ticket": ticket})

            def do_GET(self):
                if not self._gate():
                    return
                reporter = parse_qs(urlparse(self.path).query).get("reporter", [""])[0]
                mine = [t for t in server.tickets if t.get("reporter") == reporter]
                self._reply(
                    200,
                    {"tickets": [{"id": t["id"], "status": t["status"]} for t in reversed(mine)]},
                )

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # a short poll interval: shutdown() returns within it (not the default 0.5 s)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> HelpdeskServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
