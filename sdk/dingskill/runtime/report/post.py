"""Posting the report digest to the operators' group with the robot OpenAPI
(``POST /v1.0/robot/groupMessages/send``, ``sampleMarkdown``), as DingTalk documents it."""

from __future__ import annotations

import json

from ... import http_sync

__all__ = ["ReportPostError", "post_group_markdown"]


class ReportPostError(RuntimeError):
    """The OpenAPI refused the token request or the message; the message names the step."""


def post_group_markdown(
    endpoint: str,
    app_key: str,
    app_secret: str,
    robot_code: str,
    open_conversation_id: str,
    title: str,
    text: str,
    timeout_s: float = 10.0,
) -> str:
    """Send ``text`` as a markdown message to the group; returns the processQueryKey."""
    base = endpoint.rstrip("/")
    try:
        r = http_sync.post(
            f"{base}/v1.0/oauth2/accessToken",
            json={"appKey": app_key, "appSecret": app_secret},
            timeout=timeout_s,
        )
    except http_sync.HttpError as exc:
        raise ReportPostError(f"{base}: access token request failed ({exc})") from exc
    if r.status != 200:
        raise ReportPostError(f"access token: HTTP {r.status} {r.text[:200]}")
    token = _json(r).get("accessToken")
    body = {
        "robotCode": robot_code,
        "openConversationId": open_conversation_id,
        "msgKey": "sampleMarkdown",
        "msgParam": json.dumps({"title": title, "text": text}, ensure_ascii=False),
    }
    try:
        r = http_sync.post(
            f"{base}/v1.0/robot/groupMessages/send",
            headers={"x-acs-dingtalk-access-token": token},
            json=body,
            timeout=timeout_s,
        )
    except http_sync.HttpError as exc:
        raise ReportPostError(f"{base}: groupMessages/send failed ({exc})") from exc
    if r.status != 200:
        raise ReportPostError(f"groupMessages/send: HTTP {r.status} {r.text[:300]}")
    return str(_json(r).get("processQueryKey", ""))


def _json(r: http_sync.Response) -> dict:
    try:
        data = r.json()
    except ValueError:
        raise ReportPostError(
            f"{r.url}: answered a body that is not JSON: {r.text[:200]}"
        ) from None
    return data if isinstance(data, dict) else {}
