"""``EmulatorClient``: the emulator's small HTTP API from another process."""

from __future__ import annotations

import httpx

__all__ = ["EmulatorClient"]


class EmulatorClient:
    """Inject user messages into a running emulator and read the bot's replies."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmulatorClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _json(self, resp: httpx.Response):
        if resp.status_code >= 400:
            raise ValueError(f"emulator answered {resp.status_code}: {resp.text}")
        return resp.json()

    def send(self, text: str, **fields) -> str:
        """Push a user message (fields as ``Emulator.send``); returns its msgId."""
        return self._json(self._http.post("/_emulator/messages", json={"text": text, **fields}))[
            "msg_id"
        ]

    def wait_reply(self, msg_id: str, timeout: float = 10.0) -> dict:
        view = self._json(
            self._http.get("/_emulator/replies", params={"msg_id": msg_id, "wait": timeout})
        )
        if not view["replies"]:
            raise TimeoutError(f"no reply to {msg_id} within {timeout} s")
        return view["replies"][0]["body"]

    def message(self, msg_id: str) -> dict:
        return self._json(self._http.get("/_emulator/replies", params={"msg_id": msg_id}))

    def replies(self) -> list[dict]:
        return self._json(self._http.get("/_emulator/replies"))

    def stats(self) -> dict:
        return self._json(self._http.get("/_emulator/stats"))

    def faults(self, **faults) -> dict:
        return self._json(self._http.post("/_emulator/faults", json=faults))

    def drop(self, app: str | None = None, code: int = 1011) -> int:
        return self._json(self._http.post("/_emulator/drop", json={"app": app, "code": code}))[
            "dropped"
        ]

    def system(self, topic: str = "ping") -> int:
        return self._json(self._http.post("/_emulator/system", json={"topic": topic}))["sent"]

    def cards(self) -> dict:
        return self._json(self._http.get("/_emulator/cards"))
