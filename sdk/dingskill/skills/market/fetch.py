"""Reading a market's files: ``file://`` paths or ``http(s)://`` URLs, size- and time-bounded,
and refusing loopback, private and link-local addresses unless the operator allowed them for
that market (``market add --allow-private-network``, as for a market on the intranet)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ...download import read_capped
from .index import MarketError

__all__ = ["fetch_bytes", "check_address"]

TIMEOUT_S = 30.0


def check_address(url: str, allow_private: bool) -> None:
    """Refuse URLs whose host resolves to a loopback / private / link-local / reserved
    address (unless ``allow_private``), or that are not http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MarketError(f"{url}: only http(s):// and file:// markets are supported")
    if allow_private:
        return
    _checked_ip(url, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


def _checked_ip(url: str, host: str, port: int) -> str:
    """The first address of ``host`` once every address it resolves to passed the check."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise MarketError(f"{url}: cannot resolve {host} ({exc})") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if (
            addr.is_loopback
            or addr.is_private
            or addr.is_link_local
            or addr.is_reserved
            or addr.is_multicast
            or addr.is_unspecified
        ):
            raise MarketError(
                f"{url}: {host} resolves to {addr}, a non-public address; if this "
                "market is meant to be there, add it with --allow-private-network"
            )
    return infos[0][4][0]


def fetch_bytes(url: str, limit: int, allow_private: bool = False) -> bytes:
    """The bytes at ``url`` (at most ``limit``); raises :class:`MarketError` naming the URL."""
    if url.startswith("file://"):
        path = Path(unquote(urlsplit(url).path))
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise MarketError(f"{url}: cannot read ({exc.strerror})") from exc
        if size > limit:
            raise MarketError(f"{url}: {size} bytes, limit {limit}")
        return path.read_bytes()
    check_address(url, allow_private)
    from ... import http_sync

    def connect_to(host: str, port: int) -> str:
        # connect to an address checked here (a second DNS answer cannot swap it), by name
        return _checked_ip(url, host, port)

    try:
        # no redirects: a redirect could lead to an address the check above refused
        with http_sync.stream(
            "GET",
            url,
            timeout=TIMEOUT_S,
            follow_redirects=False,
            connect_to=None if allow_private else connect_to,
        ) as resp:
            if resp.status != 200:
                raise MarketError(f"{url}: HTTP {resp.status}")
            return read_capped(
                resp,
                limit,
                lambda size: MarketError(
                    f"{url}: {size} bytes, limit {limit}"
                    if size
                    else f"{url}: larger than the limit of {limit} bytes"
                ),
            )
    except http_sync.HttpError as exc:
        raise MarketError(f"{url}: download failed ({exc})") from exc
