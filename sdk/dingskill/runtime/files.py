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

import httpx

from ..download import read_capped

__all__ = ["download_message_file", "FileTooLarge", "DownloadError", "DEFAULT_MAX_BYTES"]

DEFAULT_MAX_BYTES = 10 * 2**20


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
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        r = client.post(
            f"{endpoint}/v1.0/oauth2/accessToken", json={"appKey": key, "appSecret": secret}
        )
        if r.status_code != 200:
            raise DownloadError(f"access token refused: {r.status_code}")
        token = r.json()["accessToken"]
        r = client.post(
            f"{endpoint}/v1.0/robot/messageFiles/download",
            headers={"x-acs-dingtalk-access-token": token},
            json={"robotCode": key, "downloadCode": download_code},
        )
        if r.status_code != 200 or "downloadUrl" not in r.json():
            raise DownloadError(f"download code refused: {r.status_code} {r.text[:200]}")
        url = r.json()["downloadUrl"]
        if not url.startswith(("https://", "http://")):
            raise DownloadError(f"download URL {url[:80]!r} is not http(s)")
        with client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise DownloadError(f"download answered {resp.status_code}")
            return read_capped(
                resp,
                max_bytes,
                lambda size: FileTooLarge(
                    f"file is {size} bytes, the limit is {max_bytes}"
                    if size
                    else f"file is over the limit of {max_bytes} bytes"
                ),
            )
