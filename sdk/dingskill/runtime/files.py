"""Download helper for skill handlers: the file, picture, video or voice recording of a
message, through ``/v1.0/robot/messageFiles/download`` (``robotCode`` + ``downloadCode`` ->
a short-lived ``downloadUrl``), read up to a size limit.

Handlers run in worker threads of the runtime, so this is synchronous; it uses the runtime's
app credentials (``DINGSKILL_APP_KEY`` / ``DINGSKILL_APP_SECRET``) and OpenAPI endpoint
(``DINGTALK_OPENAPI_ENDPOINT``)::

    from dingskill.runtime.files import download_message_file

    def on_media(message, slots, context):
        data = download_message_file(message["attachments"][0]["download_code"], max_bytes=2_000_000)
        return f"received {len(data)} bytes"
"""

from __future__ import annotations

import os
import time

from .. import http_sync
from ..download import read_capped
from .openapi_rate import QPS_CODES, qps_backoff

__all__ = ["download_message_file", "FileTooLarge", "DownloadError", "DEFAULT_MAX_BYTES"]

DEFAULT_MAX_BYTES = 10 * 2**20
QPS_RETRIES = 4  # a throttled call (403 QpsLimitForAppkeyAndApi) is tried again this often


class DownloadError(RuntimeError):
    """The platform refused the download code or the file could not be fetched."""


class FileTooLarge(DownloadError):
    """The file is larger than the handler's limit (nothing beyond the limit is read)."""


def download_message_file(
    download_code: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    endpoint: str | None = None,
    app_key: str | None = None,
    app_secret: str | None = None,
    timeout_s: float = 10.0,
) -> bytes:
    """The bytes of a message's file, at most ``max_bytes`` (else :class:`FileTooLarge`)."""
    endpoint = (
        endpoint or os.environ.get("DINGTALK_OPENAPI_ENDPOINT") or "https://api.dingtalk.com"
    ).rstrip("/")
    key = app_key or os.environ.get("DINGSKILL_APP_KEY")
    secret = app_secret or os.environ.get("DINGSKILL_APP_SECRET")
    if not key or not secret:
        raise DownloadError("no app credentials (DINGSKILL_APP_KEY / DINGSKILL_APP_SECRET)")
    try:
        r = _post_paced(
            f"{endpoint}/v1.0/oauth2/accessToken",
            json={"appKey": key, "appSecret": secret},
            timeout=timeout_s,
        )
        if r.status != 200:
            raise DownloadError(f"access token refused: {r.status}")
        token = _json(r).get("accessToken")
        r = _post_paced(
            f"{endpoint}/v1.0/robot/messageFiles/download",
            headers={"x-acs-dingtalk-access-token": token},
            json={"robotCode": key, "downloadCode": download_code},
            timeout=timeout_s,
        )
        url = _json(r).get("downloadUrl") if r.status == 200 else None
        if not isinstance(url, str):
            raise DownloadError(f"download code refused: {r.status} {r.text[:200]}")
        if not url.startswith(("https://", "http://")):
            raise DownloadError(f"download URL {url[:80]!r} is not http(s)")
        with http_sync.stream("GET", url, timeout=timeout_s, follow_redirects=False) as resp:
            if resp.status != 200:
                raise DownloadError(f"download answered {resp.status}")
            return read_capped(
                resp,
                max_bytes,
                lambda size: FileTooLarge(
                    f"file is {size} bytes, the limit is {max_bytes}"
                    if size
                    else f"file is over the limit of {max_bytes} bytes"
                ),
            )
    except http_sync.HttpError as exc:
        raise DownloadError(f"download failed: {exc}") from exc


def _post_paced(url: str, **kw) -> http_sync.Response:
    """POST, trying a call the platform throttled (403 with a QPS code: the app's calls to
    this API went past its per-second limit) again after a jittered back-off."""
    for attempt in range(1, QPS_RETRIES + 2):
        r = http_sync.post(url, **kw)
        if r.status != 403 or attempt > QPS_RETRIES:
            return r
        try:
            code = r.json().get("code")
        except (ValueError, AttributeError):
            return r
        if code not in QPS_CODES:
            return r
        time.sleep(qps_backoff(attempt))
    return r


def _json(r: http_sync.Response) -> dict:
    try:
        data = r.json()
    except ValueError:
        raise DownloadError(f"{r.url}: answered a body that is not JSON ({r.status})") from None
    return data if isinstance(data, dict) else {}
