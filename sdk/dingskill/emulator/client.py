"""``EmulatorClient``: the emulator's dev HTTP API (``/_emulator/...``) from another process."""

from __future__ import annotations

import base64

from .. import http_sync

__all__ = ["EmulatorClient"]


class EmulatorClient:
    """Play the users and the platform against a running emulator; read what the bot did."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def close(self) -> None:
        """Nothing to release (each request is its own connection); kept for ``with``."""

    def __enter__(self) -> EmulatorClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _json(self, resp: http_sync.Response):
        if resp.status >= 400:
            raise ValueError(f"emulator answered {resp.status}: {resp.text}")
        return resp.json()

    def _get(self, path: str, params: dict | None = None, timeout: float | None = None):
        """GET ``path``; :class:`dingskill.http_sync.HttpError` when the emulator does not
        answer, ``ValueError`` when it answers an error."""
        resp = http_sync.get(self.base_url + path, params=params, timeout=timeout or self.timeout)
        return self._json(resp)

    def _post(self, path: str, body: dict):
        resp = http_sync.post(self.base_url + path, json=body, timeout=self.timeout)
        return self._json(resp)

    # ------------------------------------------------------------------ playing the users
    def send(self, text: str = "", *, file_bytes: bytes | None = None, **fields) -> str:
        """Push a user message (fields as ``Emulator.send``: ``msgtype``, ``conversation_type``,
        ``recognition``, ``rich_text``, ``external``, ...); returns its msgId."""
        if file_bytes is not None:
            fields["file_base64"] = base64.b64encode(file_bytes).decode()
        return self._post("/_emulator/messages", {"text": text, **fields})["msg_id"]

    def push_event(self, event_type: str, data: dict | None = None, **fields) -> str:
        """Push an EVENT (re-pushed until ACKed with SUCCESS); returns its id."""
        return self._post("/_emulator/events", {"event_type": event_type, "data": data, **fields})[
            "id"
        ]

    def card_click(
        self, out_track_id: str, user_id: str, action_id: str = "", params: dict | None = None
    ) -> str:
        return self._post(
            "/_emulator/card-callbacks",
            {
                "out_track_id": out_track_id,
                "user_id": user_id,
                "action_id": action_id,
                "params": params or {},
            },
        )["id"]

    def graph_request(self, uri: str, body: dict | None = None, **fields) -> str:
        return self._post("/_emulator/graph", {"uri": uri, "body": body or {}, **fields})["id"]

    # ------------------------------------------------------------------ reading
    def wait_reply(self, msg_id: str, timeout: float = 10.0) -> dict:
        view = self._get(
            "/_emulator/replies",
            {"msg_id": msg_id, "wait": timeout},
            timeout=max(self.timeout, timeout + 5),
        )
        if not view["replies"]:
            raise TimeoutError(f"no reply to {msg_id} within {timeout} s")
        return view["replies"][0]["body"]

    def message(self, msg_id: str) -> dict:
        return self._get("/_emulator/replies", {"msg_id": msg_id})

    def push(self, push_id: str) -> dict:
        return self._get("/_emulator/pushes", {"id": push_id})

    def replies(self) -> list[dict]:
        return self._get("/_emulator/replies")

    def stats(self) -> dict:
        return self._get("/_emulator/stats")

    def cards(self) -> dict:
        return self._get("/_emulator/cards")

    def openapi(self, path: str | None = None) -> list[dict]:
        params = {"path": path} if path else {}
        return self._get("/_emulator/openapi", params)

    def proactive(self) -> list[dict]:
        return self._get("/_emulator/proactive")

    def connections(self) -> list[dict]:
        return self._get("/_emulator/connections")

    # ------------------------------------------------------------------ playing the platform
    def faults(self, **faults) -> dict:
        return self._post("/_emulator/faults", faults)

    def settings(self, **changes) -> dict:
        """Read or change settings (``robot_delivery``, ``ping_interval``, ...)."""
        return self._post("/_emulator/settings", changes)

    def register(
        self,
        users: list[str] = (),
        groups: list[str] = (),
        app: str | None = None,
        card_templates: list[str] = (),
    ) -> dict:
        return self._post(
            "/_emulator/directory",
            {
                "app": app,
                "users": list(users),
                "groups": list(groups),
                "card_templates": list(card_templates),
            },
        )

    def revoke_tokens(self, app: str | None = None) -> int:
        """Revoke the app's access tokens (a secret reset): calls with them answer 401."""
        return self._post("/_emulator/tokens/revoke", {"app": app})["revoked"]

    def drop(self, app: str | None = None, code: int = 1011) -> int:
        return self._post("/_emulator/drop", {"app": app, "code": code})["dropped"]

    def system(
        self, topic: str = "ping", reason: str = "", close_after: float | None = None
    ) -> int:
        return self._post(
            "/_emulator/system", {"topic": topic, "reason": reason, "close_after": close_after}
        )["sent"]
