"""Sending replies to DingTalk: the message's session webhook (text, markdown, action card)
with retries and backoff on refused connections and 5xx, and AI-card streaming (create,
stream, finish) for skills that hold ``Card.Streaming.Write``.

OpenAPI calls keep under the per-app per-API limit (:mod:`.openapi_rate`), retry a throttled
call (``403 Forbidden.AccessDenied.QpsLimitForAppkeyAndApi``) after a jittered back-off, and
on a ``401`` (the token was revoked: a secret reset) get a new token once and retry. An AI
card's stream coalesces: however fast the chunks come, each update carries the whole text so
far, sent when the API's pace allows, and the card ends finished."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass

from ..skills.conversation import Reply
from .openapi_rate import QPS_CODES, ApiPacer, qps_backoff
from .webhook_client import WebhookClient, WebhookConnectionLost, WebhookUnreachable

__all__ = [
    "ReplySender",
    "ReplyResult",
    "reply_body",
    "CardStreamer",
    "CardDeliveryError",
    "CardUnfinished",
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
    errcode: int | None = None  # the webhook's own error code (300001: no such session)
    uncertain: bool = False  # the request went out and may have been delivered


class ReplySender:
    """POST replies to session webhooks, retrying refused connections, 429 and 5xx; never a
    request that may have been delivered (a timeout, a connection lost mid-request), since
    the platform has no idempotency key and the user would be answered twice.

    Over :class:`~dingskill.runtime.webhook_client.WebhookClient`, a lean HTTP/1.1 client
    with kept-alive connections: the one request per message costs the event loop a fifth
    of what aiohttp's general client did (its per-request machinery was the largest part of
    the runtime's loop after the engine)."""

    def __init__(
        self, timeout_s: float = 5.0, retries: int = 3, backoff_s: float = 0.2, metrics=None
    ) -> None:
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.metrics = metrics
        self._http = None
        self._loop = None

    def _client(self):
        loop = asyncio.get_running_loop()
        if self._http is None or self._http.closed or self._loop is not loop:
            self._http = WebhookClient(timeout_s=self.timeout_s, limit_per_host=200)
            self._loop = loop
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(self, webhook: str, reply: Reply, at_user: str | None = None) -> ReplyResult:
        body = json.dumps(reply_body(reply, at_user), ensure_ascii=False).encode()
        error, status = None, None
        http = self._client()
        for attempt in range(1, self.retries + 2):
            try:
                status, raw = await http.post(webhook, body)
                if status >= 500 or status == 429:
                    error = f"webhook answered {status}"
                else:
                    data = json.loads(raw) if raw else {}
                    if not isinstance(data, dict):
                        data = {}
                    if status == 200 and data.get("errcode", 0) == 0:
                        return ReplyResult(True, attempt, status=status)
                    # a 4xx or an errcode (expired session, bad body) will not get better by retrying
                    code = data.get("errcode")
                    return ReplyResult(
                        False,
                        attempt,
                        f"webhook refused: {status} errcode {code} {data.get('errmsg', '')}".strip(),
                        status,
                        code if isinstance(code, int) else None,
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
                    uncertain=True,
                )
            except WebhookUnreachable as exc:  # never reached the server: safe
                error = f"webhook unreachable ({exc})"
            except WebhookConnectionLost as exc:
                return ReplyResult(
                    False,
                    attempt,
                    f"webhook connection lost ({exc}; not retried: it may have been delivered)",
                    status,
                    uncertain=True,
                )
            except ValueError as exc:
                if status is None:  # the URL itself: nothing was sent, nothing will be
                    return ReplyResult(False, attempt, f"bad session webhook: {exc}")
                error = "webhook answered a body that is not JSON"
            if attempt <= self.retries:
                if self.metrics is not None:
                    self.metrics.reply_retries.inc()
                await asyncio.sleep(self.backoff_s * (2 ** (attempt - 1)))
        return ReplyResult(False, self.retries + 1, error, status)


class CardDeliveryError(RuntimeError):
    """An OpenAPI call failed: the platform refused it, could not be reached, or did not
    deliver a card (``deliverResults[].success``)."""


class CardUnfinished(CardDeliveryError):
    """An AI card reached the user but could not be finished: answering again as text would
    show the user the answer twice, so the caller records it undelivered instead."""

    def __init__(self, track: str, error: str) -> None:
        super().__init__(f"AI card {track} delivered but not finished: {error}")
        self.track = track


class OpenApi:
    """Access token (cached until 5 min before it expires, fetched again once on a 401) and
    JSON calls to the OpenAPI, paced per API under ``qps`` calls a second, a throttled call
    retried up to ``qps_retries`` times; over one aiohttp session (created on first use inside
    the running loop, closed by :meth:`close`)."""

    TOKEN_PATH = "/v1.0/oauth2/accessToken"

    def __init__(
        self,
        endpoint: str,
        app_key: str,
        app_secret: str,
        timeout_s: float = 5.0,
        qps: float = 20.0,
        qps_retries: int = 6,
        metrics=None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.app_key, self.app_secret = app_key, app_secret
        self.timeout_s = timeout_s
        self.pacer = ApiPacer(qps)
        self.qps_retries = qps_retries
        self.metrics = metrics
        self._session = None
        self._token: tuple[str, float] | None = None
        self._token_lock: asyncio.Lock | None = None
        self.counts = {"throttled": 0, "token_refreshed": 0}

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

    async def headers(self, stale: str | None = None) -> dict:
        """The token header; ``stale``: a token the platform refused (401), fetched anew
        unless another call already did."""
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        async with self._token_lock:  # one token request at a time, not one per call
            if stale is not None and self._token is not None and self._token[0] == stale:
                self._token = None
            if self._token is None or self._token[1] < time.time():
                self._token = await self._fetch_token()
        return {"x-acs-dingtalk-access-token": self._token[0]}

    async def _fetch_token(self) -> tuple[str, float]:
        body = {"appKey": self.app_key, "appSecret": self.app_secret}
        for attempt in range(1, self.qps_retries + 2):
            await self.pacer.wait(self.TOKEN_PATH)
            status, data, text = await self._json("POST", self.TOKEN_PATH, body, {})
            if status == 200 and "accessToken" in data:
                return data["accessToken"], time.time() + float(data.get("expireIn", 7200)) - 300
            if not self._throttled(status, data) or attempt > self.qps_retries:
                raise CardDeliveryError(f"access token refused: {status} {text}")
            await asyncio.sleep(qps_backoff(attempt))
        raise AssertionError("unreachable")

    def _throttled(self, status: int, data: dict) -> bool:
        if status == 403 and data.get("code") in QPS_CODES:
            self.counts["throttled"] += 1
            if self.metrics is not None:
                self.metrics.openapi_throttled.inc()
            return True
        return False

    async def pace(self, path: str) -> None:
        """Wait for ``path``'s turn (then :meth:`call` with ``paced=True``)."""
        await self.pacer.wait(path)

    async def call(self, method: str, path: str, body: dict, *, paced: bool = False) -> dict:
        """One OpenAPI call; a non-2xx answer raises with the platform's code and message.

        It waits for the API's turn (unless the caller already did: ``paced``), retries a
        throttled call after a jittered back-off, and on a 401 gets a new token once."""
        refreshed = False
        throttled = 0
        while True:
            if not paced:
                await self.pacer.wait(path)
            paced = False
            headers = await self.headers()
            status, data, text = await self._json(method, path, body, headers)
            if status // 100 == 2:
                return data
            if status == 401 and not refreshed:
                refreshed = True  # revoked (a secret reset): one new token, one more try
                self.counts["token_refreshed"] += 1
                await self.headers(stale=headers["x-acs-dingtalk-access-token"])
                continue
            if self._throttled(status, data) and throttled < self.qps_retries:
                throttled += 1
                await asyncio.sleep(qps_backoff(throttled))
                continue
            raise CardDeliveryError(
                f"{method} {path}: {status} {data.get('code', '')} "
                f"{data.get('message', text)}".strip()
            )

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
    finish (``flowStatus`` FINISHED). A card that could not be delivered raises
    :class:`CardDeliveryError` (the caller may answer through the session webhook instead);
    one delivered but not finished raises :class:`CardUnfinished` (the caller must not)."""

    PROCESSING, FINISHED, FAILED = "1", "3", "5"
    STREAM_PATH = "/v1.0/card/streaming"

    def __init__(
        self,
        endpoint: str,
        app_key: str,
        app_secret: str,
        template_id: str | None = None,
        content_key: str = "content",
        callback_type: str = "STREAM",
        qps: float = 20.0,
        qps_retries: int = 6,
        metrics=None,
    ) -> None:
        self.api = OpenApi(
            endpoint, app_key, app_secret, qps=qps, qps_retries=qps_retries, metrics=metrics
        )
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
        chunks,
        template_id: str | None = None,
        content_key: str | None = None,
    ) -> str:
        """Create and deliver an AI card, stream the growing text, finish; returns its id.

        ``chunks``: a list of strings or an async iterable of them, however fast it yields:
        updates coalesce (each carries the whole text so far, sent when the streaming API's
        pace allows), and the last one finalizes the card."""
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
        state = {"text": "", "done": False}
        try:
            await self._stream_coalesced(track, key, chunks, state)
            await self.put_card_data(track, {key: state["text"], "flowStatus": self.FINISHED})
        except Exception as exc:  # noqa: BLE001 - the card is out: finish it or say so
            error = f"{type(exc).__name__}: {exc}"
            if state["done"]:
                try:  # the whole text is known: one more try to leave a finished card
                    await self.put_card_data(
                        track, {key: state["text"], "flowStatus": self.FINISHED}
                    )
                    return track
                except Exception as again:  # noqa: BLE001 - reported below
                    error = f"{error}; finishing it: {again}"
            raise CardUnfinished(track, error) from None
        return track

    async def _stream_coalesced(self, track: str, key: str, chunks, state: dict) -> None:
        changed = asyncio.Event()

        async def produce() -> None:
            try:
                if hasattr(chunks, "__aiter__"):
                    async for chunk in chunks:
                        state["text"] += chunk
                        changed.set()
                else:  # known pieces: each goes out while the pace allows, else they merge
                    for chunk in chunks:
                        state["text"] += chunk
                        changed.set()
                        await asyncio.sleep(0)
                state["done"] = True
            finally:
                changed.set()  # the end, or a failed source: the loop below sees either

        producer = asyncio.ensure_future(produce())
        sent = None
        try:
            while True:
                await changed.wait()
                await self.api.pace(self.STREAM_PATH)  # chunks arriving meanwhile merge
                changed.clear()
                if producer.done() and not state["done"]:
                    raise CardDeliveryError(
                        f"the reply's text stream failed: {producer.exception()!r}"
                    )
                final, text = state["done"], state["text"]
                if text != sent or final:
                    await self.api.call(
                        "PUT",
                        self.STREAM_PATH,
                        {
                            "outTrackId": track,
                            "guid": str(uuid.uuid1()),
                            "key": key,
                            "content": text,
                            "isFull": True,
                            "isFinalize": final,
                            "isError": False,
                        },
                        paced=True,
                    )
                    sent = text
                if final:
                    return
        finally:
            if not producer.done():
                producer.cancel()

    async def close(self) -> None:
        await self.api.close()
