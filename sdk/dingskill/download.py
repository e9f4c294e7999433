"""Reading a streamed HTTP answer without trusting its size: one cap for every download
(packages, market indexes, message files)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["read_capped"]


def read_capped(resp, limit: int, too_large: Callable[[int | None], Exception]) -> bytes:
    """The body of a streamed response (:func:`dingskill.http_sync.stream`), at most
    ``limit`` bytes.

    Refuses a declared ``Content-Length`` over the limit before reading, then stops as soon as
    what arrived passes it. ``too_large(declared)`` builds the error (``declared`` is None when
    the body itself ran over)."""
    declared = int(resp.headers.get("content-length") or 0)
    if declared > limit:
        raise too_large(declared)
    buf = bytearray()
    for chunk in resp.iter_bytes():
        buf += chunk
        if len(buf) > limit:
            raise too_large(None)
    return bytes(buf)
