"""Sending replies to DingTalk: the message's session webhook (text, markdown, action card)
with retries and backoff on timeouts and 5xx, and AI-card streaming (create, stream, finish)
for skills that hold ``Card.Streaming.Write``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import httpx

from ..skills.conversation import Reply

__all__ = ["ReplySender", "ReplyResult", "reply_body", "CardStreamer"]


def reply_body(reply: Reply, at_user: str | None = None) -> dict:
    """The session-webhook JSON body of a reply."""
    if reply.format == "markdown":
        body = {
            "msgtype": "markdown",
            "markdown": {"title": reply.title or reply.text[:20], "text": reply.text},
        }
    elif reply.format == "card" and reply.card:
        card = reply.card
        buttons = [
            {
                "title": b.get("title", ""),
                "actionURL": b.get("url")
                or f"dtmd://dingtalkclient/sendMessage?content={b.get('action', b.get('title', ''))}",
            }
            for b in card.get("buttons", [])
        ]
        body = {
            "msgtype": "actionCard",
            "actionCard": {
                "title": card.get("title") or reply.title or "card",
                "text": card.get("text") or reply.text,
                "btnOrientation": "0",
                "btns": buttons,
            },
        }
    else:
        body = {"msgtype": "text", "text": {"content": reply.text}}
    if at_user:
        body["at"] = {"atUserIds": [at_user], "isAtAll": False}
    return body


@dataclass
class ReplyResult:
    ok: bool
    attempts: int
    error: str | None = None
    status: int | None = None


class ReplySender:
    """POST replies to session webhooks, retrying refused connections, 429 and 5xx; never a
    request that may have been delivered (a timeout, a connection lost mid-request), since
    the platform has no idempotency key and the user would be answered twice.

    Uses aiohttp's client: its connection pool stays cheap with hundreds of replies in flight
    (httpx's pool scans every connection per request, which dominated the runtime's profile)."""

    def __init__(
        self, timeout_s: float = 5.0, retries: int = 3, backoff_s: float = 0.2, metrics=None
    ) -> None:
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.metrics = metrics
        self._session = None

    def _client(self):
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=200, limit_per_host=200, ttl_dns_cache=300),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, webhook: str, reply: Reply, at_user: str | None = None) -> ReplyResult:
        import aiohttp

        body = json.dumps(reply_body(reply, at_user), ensure_ascii=False).encode()
        error, status = None, None
        session = self._client()
        for attempt in range(1, self.retries + 2):
            try:
                async with session.post(
                    webhook, data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    status = resp.status
                    raw = await resp.read()
                if status >= 500 or status == 429:
                    error = f"webhook answered {status}"
                else:
                    data = json.loads(raw) if raw else {}
                    if status == 200 and data.get("errcode", 0) == 0:
                        return ReplyResult(True, attempt, status=status)
                    # a 4xx or an errcode (expired session, bad body) will not get better by retrying
                    return ReplyResult(
                        False,
                        attempt,
                        f"webhook refused: {status} {data.get('errmsg', '')}".strip(),
                        status,
                    )
            except asyncio.TimeoutError:
                # the request went out and may have been delivered: posting it again could
                # answer the user twice, so an unanswered request is not retried
                return ReplyResult(
                    False,
                    attempt,
                    f"webhook timed out after {self.timeout_s:g} s (not retried: it may have "
                    "been delivered)",
                    status,
                )
            except aiohttp.ClientConnectorError as exc:  # never reached the server: safe
                error = f"webhook unreachable ({type(exc).__name__})"
            except aiohttp.ClientError as exc:
                return ReplyResult(
                    False,
                    attempt,
                    f"webhook connection lost ({type(exc).__name__}; not retried: it may have "
                    "been delivered)",
                    status,
                )
            except ValueError:
                error = "webhook answered a body that is not JSON"
            if attempt <= self.retries:
                if self.metrics is not None:
                    self.metrics.reply_retries.inc()
                await asyncio.sleep(self.backoff_s * (2 ** (attempt - 1)))
        return ReplyResult(False, self.retries + 1, error, status)


class CardStreamer:
    """AI-card streaming: create + deliver a card, stream content updates, finalise."""

    def __init__(
        self,
        endpoint: str,
        app_key: str,
        app_secret: str,
        template_id: str = "dingskill.ai-card",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.app_key, self.app_secret, self.template_id = app_key, app_secret, template_id
        self._client = client or httpx.AsyncClient(timeout=5)
        self._token: tuple[str, float] | None = None

    async def _headers(self) -> dict:
        if self._token is None or self._token[1] < time.time():
            r = await self._client.post(
                f"{self.endpoint}/v1.0/oauth2/accessToken",
                json={"appKey": self.app_key, "appSecret": self.app_secret},
            )
            r.raise_for_status()
            data = r.json()
            self._token = (data["accessToken"], time.time() + data["expireIn"] - 300)
        return {"x-acs-dingtalk-access-token": self._token[0]}

    async def stream(self, conversation_id: str, chunks: list[str], robot_code: str = "") -> str:
        """Create a card in the conversation, stream the growing text, finish; returns its id."""
        track = uuid.uuid4().hex
        h = await self._headers()
        r = await self._client.post(
            f"{self.endpoint}/v1.0/card/instances/createAndDeliver",
            headers=h,
            json={
                "cardTemplateId": self.template_id,
                "outTrackId": track,
                "openSpaceId": f"dtv1.card//IM_ROBOT.{conversation_id}",
                "cardData": {"cardParamMap": {"content": ""}},
                "imRobotOpenDeliverModel": {"robotCode": robot_code},
            },
        )
        r.raise_for_status()
        text = ""
        for i, chunk in enumerate(chunks):
            text += chunk
            r = await self._client.put(
                f"{self.endpoint}/v1.0/card/streaming",
                headers=h,
                json={
                    "outTrackId": track,
                    "guid": uuid.uuid4().hex,
                    "key": "content",
                    "content": text,
                    "isFull": True,
                    "isFinalize": i == len(chunks) - 1,
                    "isError": False,
                },
            )
            r.raise_for_status()
        return track

    async def close(self) -> None:
        await self._client.aclose()
