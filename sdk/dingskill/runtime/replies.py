"""Sending replies to DingTalk: the message's session webhook (text, markdown, action card)
with retries and backoff on timeouts and 5xx, and AI-card streaming (create, stream, finish)
for skills that hold ``Card.Streaming.Write``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass

from ..skills.conversation import Reply

__all__ = [
    "ReplySender",
    "ReplyResult",
    "reply_body",
    "CardStreamer",
    "CardDeliveryError",
    "OpenApi",
    "deliver_body",
]


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

    Uses aiohttp's client, the project's one async HTTP client: its connection pool stays
    cheap with hundreds of replies in flight (httpx's pool scanned every connection per
    request, which dominated the runtime's profile)."""

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


class CardDeliveryError(RuntimeError):
    """An OpenAPI call failed: the platform refused it, could not be reached, or did not
    deliver a card (``deliverResults[].success``)."""


class OpenApi:
    """Access token (cached until 5 min before it expires) and JSON calls to the OpenAPI,
    over one aiohttp session (created on first use inside the running loop, closed by
    :meth:`close`)."""

    def __init__(
        self, endpoint: str, app_key: str, app_secret: str, timeout_s: float = 5.0
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.app_key, self.app_secret = app_key, app_secret
        self.timeout_s = timeout_s
        self._session = None
        self._token: tuple[str, float] | None = None

    def _client(self):
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session

    async def _json(
        self, method: str, path: str, body: dict, headers: dict
    ) -> tuple[int, dict, str]:
        """(status, JSON object or {}, the start of the raw body) of one request; a timeout or
        a connection failure raises :class:`CardDeliveryError` naming the endpoint."""
        import aiohttp

        try:
            async with self._client().request(
                method, f"{self.endpoint}{path}", json=body, headers=headers
            ) as r:
                status, raw = r.status, await r.read()
        except asyncio.TimeoutError:
            raise CardDeliveryError(
                f"{method} {path}: no answer from {self.endpoint} within {self.timeout_s:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise CardDeliveryError(
                f"{method} {path}: {self.endpoint} unreachable ({type(exc).__name__}: {exc})"
            ) from None
        text = raw.decode("utf-8", "replace")
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        return status, data if isinstance(data, dict) else {}, text[:200]

    async def headers(self) -> dict:
        if self._token is None or self._token[1] < time.time():
            path = "/v1.0/oauth2/accessToken"
            status, data, text = await self._json(
                "POST", path, {"appKey": self.app_key, "appSecret": self.app_secret}, {}
            )
            if status != 200 or "accessToken" not in data:
                raise CardDeliveryError(f"access token refused: {status} {text}")
            self._token = (data["accessToken"], time.time() + data["expireIn"] - 300)
        return {"x-acs-dingtalk-access-token": self._token[0]}

    async def call(self, method: str, path: str, body: dict) -> dict:
        """One OpenAPI call; a non-2xx answer raises with the platform's code and message."""
        status, data, text = await self._json(method, path, body, await self.headers())
        if status // 100 != 2:
            raise CardDeliveryError(
                f"{method} {path}: {status} {data.get('code', '')} "
                f"{data.get('message', text)}".strip()
            )
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def card_id(message) -> str:
    """The card instance id as the SDK's ``CardReplier.gen_card_id`` makes it."""
    factor = f"{message.sender_id}_{message.conversation_id}_{message.msg_id}_{uuid.uuid1()}"
    return hashlib.sha256(factor.encode()).hexdigest()


def deliver_body(message, track: str, robot_code: str) -> dict:
    """The deliver request of ``CardReplier``: group -> ``IM_GROUP.<conversationId>`` with
    the robot code, 1:1 -> ``IM_ROBOT.<senderStaffId>``."""
    body: dict = {"outTrackId": track, "userIdType": 1}
    if message.conversation_type == "group":
        body["openSpaceId"] = f"dtv1.card//IM_GROUP.{message.conversation_id}"
        body["imGroupOpenDeliverModel"] = {"robotCode": robot_code}
    else:
        body["openSpaceId"] = f"dtv1.card//IM_ROBOT.{message.sender_id}"
        body["imRobotOpenDeliverModel"] = {"spaceType": "IM_ROBOT"}
    return body


def check_delivered(data: dict) -> None:
    """Raise unless every ``result.deliverResults[]`` entry says ``success``."""
    result = (data or {}).get("result")
    # /deliver answers the list itself, /createAndDeliver {"deliverResults": [...]}
    results = result if isinstance(result, list) else (result or {}).get("deliverResults")
    if not isinstance(results, list):
        return
    failed = [r for r in results if not r.get("success")]
    if failed:
        raise CardDeliveryError(
            "card not delivered: "
            + "; ".join(
                f"{r.get('spaceType', '')}.{r.get('spaceId', '')}: {r.get('errorMsg', '?')}"
                for r in failed
            )
        )


class CardStreamer:
    """AI cards exactly as the SDK's ``AICardReplier`` builds them: create the instance
    (``flowStatus`` PROCESSING, callbackType, both space models), deliver it to the
    conversation's open space, stream the growing text under the template's content key,
    finish (``flowStatus`` FINISHED). A delivery the platform reports failed raises
    :class:`CardDeliveryError` (the caller falls back to the session webhook)."""

    PROCESSING, FINISHED, FAILED = "1", "3", "5"

    def __init__(
        self,
        endpoint: str,
        app_key: str,
        app_secret: str,
        template_id: str | None = None,
        content_key: str = "content",
        callback_type: str = "STREAM",
    ) -> None:
        self.api = OpenApi(endpoint, app_key, app_secret)
        self.robot_code = app_key  # the robot code of an app's robot is its client id
        self.template_id, self.content_key = template_id, content_key
        self.callback_type = callback_type

    async def create_and_deliver(self, message, template_id: str, card_data: dict) -> str:
        """CardReplier.create_and_send_card: returns the card instance id (outTrackId)."""
        track = card_id(message)
        await self.api.call(
            "POST",
            "/v1.0/card/instances",
            {
                "cardTemplateId": template_id,
                "outTrackId": track,
                "cardData": {"cardParamMap": card_data},
                "callbackType": self.callback_type,
                "imGroupOpenSpaceModel": {"supportForward": True},
                "imRobotOpenSpaceModel": {"supportForward": True},
            },
        )
        data = await self.api.call(
            "POST", "/v1.0/card/instances/deliver", deliver_body(message, track, self.robot_code)
        )
        check_delivered(data)
        return track

    async def put_card_data(self, track: str, card_data: dict, **extra) -> None:
        await self.api.call(
            "PUT",
            "/v1.0/card/instances",
            {"outTrackId": track, "cardData": {"cardParamMap": card_data}, **extra},
        )

    async def stream(
        self,
        message,
        chunks: list[str],
        template_id: str | None = None,
        content_key: str | None = None,
    ) -> str:
        """Create and deliver an AI card, stream the growing text, finish; returns its id."""
        template = template_id or self.template_id
        if not template:
            raise CardDeliveryError(
                "no AI card template id: set cards.ai_template_id in the runtime config or "
                "ai_card.template_id in the skill"
            )
        key = content_key or self.content_key
        track = await self.create_and_deliver(
            message, template, {key: "", "flowStatus": self.PROCESSING}
        )
        text = ""
        for i, chunk in enumerate(chunks):
            text += chunk
            await self.api.call(
                "PUT",
                "/v1.0/card/streaming",
                {
                    "outTrackId": track,
                    "guid": str(uuid.uuid1()),
                    "key": key,
                    "content": text,
                    "isFull": True,
                    "isFinalize": i == len(chunks) - 1,
                    "isError": False,
                },
            )
        await self.put_card_data(track, {key: text, "flowStatus": self.FINISHED})
        return track

    async def close(self) -> None:
        await self.api.close()
