"""The OpenAPI endpoints a robot calls besides cards: tokens, proactive messages, files, off-duty.

* ``POST /v1.0/oauth2/accessToken`` and ``GET /gettoken``: the same token again while it is
  valid (renewed), until revoked (``Emulator.revoke_tokens``); see :mod:`.limits`;
* every call is held to the per-app per-API limit (``qps_limit``, default 20 a second): past
  it, ``403 Forbidden.AccessDenied.QpsLimitForAppkeyAndApi``;
* ``POST /v1.0/robot/oToMessages/batchSend`` (1:1 to up to 20 staff ids) and
  ``POST /v1.0/robot/groupMessages/send`` (to a group by ``openConversationId``): both need the
  app's ``qyapi_robot_sendmsg`` scope, ``robotCode`` equal to the app's client id, a known
  ``msgKey`` and ``msgParam`` as a JSON *string* holding that key's fields. Unknown staff ids
  come back in ``invalidStaffIdList`` (as the platform answers), an unknown group is an error;
* ``POST /v1.0/robot/messageFiles/download`` (``downloadCode`` + ``robotCode``) returns a
  ``downloadUrl`` served by the emulator (``GET /_emulator/files/<token>``);
* ``POST /v1.0/innerApi/robot/stream/away/template/update``: the robot's off-duty prompt, the
  path the Python SDK's ``ChatbotHandler.set_off_duty_prompt`` calls (an inner API: not in the
  public reference). Shown to users who write while no connection of the app is up.

Every request is recorded (``Emulator.openapi_log``, ``GET /_emulator/openapi``) with its
body, status and answer. Error codes follow the platform's ``{"code", "message",
"requestid"}`` shape; where the platform's exact code is not in the public sources the
emulator's code is descriptive (``InvalidParameter.<Field>``).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .limits import QPS_CODE
from .state import App, now_ms

__all__ = ["MSG_KEYS", "OpenApi", "OpenApiError"]

# msgKey -> required fields of its msgParam (the robot OpenAPI's message templates)
MSG_KEYS = {
    "sampleText": ("content",),
    "sampleMarkdown": ("title", "text"),
    "sampleImageMsg": ("photoURL",),
    "sampleLink": ("text", "title", "picUrl", "messageUrl"),
    "sampleActionCard": ("title", "text", "singleTitle", "singleURL"),
    "sampleActionCard2": ("title", "text"),
    "sampleActionCard3": ("title", "text"),
    "sampleActionCard4": ("title", "text"),
    "sampleActionCard5": ("title", "text"),
    "sampleActionCard6": ("title", "text"),
    "sampleAudio": ("mediaId", "duration"),
    "sampleFile": ("mediaId", "fileName", "fileType"),
    "sampleVideo": ("duration", "videoMediaId", "videoType", "picMediaId"),
}
SEND_SCOPE = "qyapi_robot_sendmsg"


class OpenApiError(Exception):
    """A request the platform refuses: HTTP status, code and message."""

    def __init__(self, status: int, code: str, message: str, extra: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {
                "code": self.code,
                "message": self.message,
                "requestid": uuid.uuid4().hex,
                **self.extra,
            },
            status_code=self.status,
        )


def require(body: dict, *fields: str, types: tuple = (str,)) -> None:
    for f in fields:
        v = body.get(f)
        if v is None or v == "" or not isinstance(v, types):
            kind = "/".join(t.__name__ for t in types)
            raise OpenApiError(400, "MissingParameter", f"{f} ({kind}) is required")


def json_string(body: dict, name: str) -> dict:
    """A field the platform takes as a JSON *string* holding an object."""
    raw = body.get(name)
    if not isinstance(raw, str):
        raise OpenApiError(
            400,
            f"InvalidParameter.{name[0].upper()}{name[1:]}",
            f"{name} must be a JSON string (got {type(raw).__name__}); json.dumps the object",
        )
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise OpenApiError(400, "InvalidParameter", f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise OpenApiError(400, "InvalidParameter", f"{name} must hold a JSON object")
    return value


class OpenApi:
    """Mixin of :class:`~dingskill.emulator.Emulator`: tokens and the robot OpenAPI."""

    # ------------------------------------------------------------------ plumbing
    async def _handle(self, request: Request, handler, scope: str | None = None):
        """Authenticate, parse, run ``handler(app, body)``, record the exchange."""
        body = None
        try:
            app = self._authorized(request)
            if app is None:
                raise OpenApiError(
                    401,
                    "InvalidAuthentication",
                    "x-acs-dingtalk-access-token missing, expired or revoked; get a new one "
                    "from /v1.0/oauth2/accessToken",
                )
            self._check_qps(app.client_id, request.url.path)
            if scope and scope not in app.scopes:
                raise OpenApiError(
                    403,
                    "Forbidden.AccessDenied.AccessTokenPermissionDenied",
                    f"the app has no permission {scope} for {request.url.path}; "
                    "apply for it in the developer console",
                    {"accessdenieddetail": {"requiredScopes": [scope]}},
                )
            try:
                body = await request.json()
            except ValueError as exc:
                raise OpenApiError(400, "InvalidParameter", "body is not JSON") from exc
            if not isinstance(body, dict):
                raise OpenApiError(400, "InvalidParameter", "body is not a JSON object")
            result = await handler(app, body)
            status = 200
            resp = JSONResponse(result)
        except OpenApiError as exc:
            status, result, resp = exc.status, None, exc.response()
        self.openapi_log.append(
            {
                "at_ms": now_ms(),
                "method": request.method,
                "path": request.url.path,
                "app": getattr(self._authorized(request), "client_id", None),
                "body": body,
                "status": status,
                "response": json.loads(resp.body),
            }
        )
        self.counters["openapi"] += 1
        return resp

    def _authorized(self, request: Request) -> App | None:
        app = self.tokens.app_of(request.headers.get("x-acs-dingtalk-access-token", ""))
        return None if app is None else self.apps.get(app)

    def _check_qps(self, app: str, api: str) -> None:
        """The per-app per-API limit of the throttling page (default 20 calls a second)."""
        if not self.qps.allow(app, api):
            self.counters["qps_limited"] += 1
            raise OpenApiError(
                403,
                QPS_CODE,
                f"app {app} called {api} more than {self.qps.limit} times this second; "
                "wait and retry, and keep the call rate under the limit",
            )

    def _robot_code(self, app: App, body: dict) -> None:
        require(body, "robotCode")
        if body["robotCode"] != app.robot_code:
            raise OpenApiError(
                400,
                "InvalidParameter.RobotCode",
                f"robotCode {body['robotCode']!r} is not this app's robot "
                f"(a robot's code is its app's client id, here {app.robot_code!r})",
            )

    # ------------------------------------------------------------------ tokens
    async def _access_token(self, request: Request):
        try:
            body = await request.json()
        except ValueError:
            body = {}
        key = body.get("appKey") if isinstance(body, dict) else None
        app = self.apps.get(key) if isinstance(key, str) else None
        if app is None or app.secret != body.get("appSecret"):
            return JSONResponse(
                {"code": "InvalidAuthentication", "message": "appKey or appSecret is wrong"},
                status_code=400,
            )
        try:
            self._check_qps(key, request.url.path)
        except OpenApiError as exc:
            return exc.response()
        token, ttl = self.tokens.get(key)
        return JSONResponse({"accessToken": token, "expireIn": ttl})

    async def _gettoken(self, request: Request):
        key, secret = request.query_params.get("appkey"), request.query_params.get("appsecret")
        app = self.apps.get(key or "")
        if app is None or app.secret != secret:
            return JSONResponse({"errcode": 40089, "errmsg": "invalid appkey or appsecret"})
        if not self.qps.allow(key, "/gettoken"):
            self.counters["qps_limited"] += 1
            return JSONResponse({"errcode": 90018, "errmsg": "QPS limit for this app and API"})
        token, ttl = self.tokens.get(key)
        return JSONResponse({"errcode": 0, "access_token": token, "expires_in": ttl})

    # ------------------------------------------------------------------ proactive messages
    def _msg_param(self, body: dict) -> tuple[str, dict]:
        require(body, "msgKey")
        if body.get("msgParam") is None:
            raise OpenApiError(400, "MissingParameter", "msgParam (JSON string) is required")
        key = body["msgKey"]
        if key not in MSG_KEYS:
            raise OpenApiError(
                400,
                "InvalidParameter.MsgKey",
                f"unknown msgKey {key!r}; one of {', '.join(MSG_KEYS)}",
            )
        param = json_string(body, "msgParam")
        missing = [f for f in MSG_KEYS[key] if param.get(f) in (None, "")]
        if missing:
            raise OpenApiError(
                400, "InvalidParameter.MsgParam", f"msgParam of {key}: missing {', '.join(missing)}"
            )
        return key, param

    async def _batch_send(self, app: App, body: dict) -> dict:
        self._robot_code(app, body)
        users = body.get("userIds")
        if not isinstance(users, list) or not users or not all(isinstance(u, str) for u in users):
            raise OpenApiError(400, "MissingParameter", "userIds (array of staff ids) is required")
        if len(users) > 20:
            raise OpenApiError(
                400, "InvalidParameter.UserIds", f"userIds holds {len(users)} ids; at most 20"
            )
        key, param = self._msg_param(body)
        invalid = [u for u in users if u not in app.users]
        key_ = uuid.uuid4().hex
        for u in users:
            if u not in invalid:
                self._record_proactive(app, "user", u, key, param, key_)
        return {
            "processQueryKey": key_,
            "invalidStaffIdList": invalid,
            "flowControlledStaffIdList": [],
        }

    async def _group_send(self, app: App, body: dict) -> dict:
        self._robot_code(app, body)
        require(body, "openConversationId")
        key, param = self._msg_param(body)
        cid = body["openConversationId"]
        if cid not in app.groups:
            raise OpenApiError(
                400,
                "InvalidParameter.OpenConversationId",
                f"openConversationId {cid!r}: no such group, or the robot is not in it",
            )
        key_ = uuid.uuid4().hex
        self._record_proactive(app, "group", cid, key, param, key_)
        return {"processQueryKey": key_}

    def _record_proactive(self, app: App, kind: str, to: str, key: str, param: dict, pqk: str):
        with self._reply_cond:
            self.proactive.append(
                {
                    "at_ms": now_ms(),
                    "app": app.client_id,
                    "to_" + kind: to,
                    "msgKey": key,
                    "msgParam": param,
                    "processQueryKey": pqk,
                }
            )
            self._reply_cond.notify_all()

    # ------------------------------------------------------------------ files and off-duty
    async def _file_download(self, app: App, body: dict) -> dict:
        self._robot_code(app, body)
        require(body, "downloadCode")
        f = self.files.get(body["downloadCode"])
        if f is None or f["app"] != app.client_id:
            raise OpenApiError(
                400,
                "InvalidParameter.DownloadCode",
                f"downloadCode {body['downloadCode']!r} is unknown or not of this robot's messages",
            )
        token = secrets.token_urlsafe(16)
        self.file_urls[token] = (body["downloadCode"], time.time() + 3600)
        return {"downloadUrl": f"{self.url}/_emulator/files/{token}"}

    async def _serve_file(self, request: Request):
        entry = self.file_urls.get(request.path_params["token"])
        if entry is None or entry[1] < time.time():
            return Response("link expired or unknown", status_code=404)
        f = self.files[entry[0]]
        return Response(f["data"], media_type=f["mime"])

    async def _off_duty(self, app: App, body: dict) -> dict:
        self._robot_code(app, body)
        require(body, "cardTemplateId")
        data = json_string(body, "cardData")
        app.off_duty = {"cardTemplateId": body["cardTemplateId"], "cardData": data}
        return {"success": True, "result": True}

    # routes (bound in server.py)
    async def _r_batch_send(self, request):
        return await self._handle(request, self._batch_send, SEND_SCOPE)

    async def _r_group_send(self, request):
        return await self._handle(request, self._group_send, SEND_SCOPE)

    async def _r_file_download(self, request):
        return await self._handle(request, self._file_download)

    async def _r_off_duty(self, request):
        return await self._handle(request, self._off_duty)
