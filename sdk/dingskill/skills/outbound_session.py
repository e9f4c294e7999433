"""The aiohttp sessions that skills' HTTP actions go out through: one per outbound policy
and event loop, each connecting only to addresses its policy allows.

A session's connector resolves names with :class:`CheckedResolver`: every address a name
resolves to is checked against the policy (private, loopback, link-local and other
non-public addresses refused unless the operator allows them) and only checked addresses
are handed to the connector. The connection is opened by name, so TLS still verifies the
certificate against the name (SNI) and the ``Host`` header is the name; a second DNS answer
cannot swap the address, because the address connected to is the one that was checked.
Literal IP addresses never reach a resolver: :meth:`HttpAction` checks them before the
request. Sessions are shared by the calls of equal policies (pooled connections were opened
under the same rules), created inside the running loop and closed by
:func:`close_outbound_sessions` (the runtime calls it on shutdown).
"""

from __future__ import annotations

import asyncio
import atexit
import socket
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from .outbound import OutboundPolicy, OutboundRefused, check_addresses, host_allowed

__all__ = ["CheckedResolver", "OutboundSessions", "close_outbound_sessions", "outbound_session"]

MAX_SESSIONS = 64  # distinct policies with a session open at once (per event loop)


class CheckedResolver(AbstractResolver):
    """Resolve with the system resolver, refuse the name unless ``policy`` allows the host
    and every address it resolved to; returns only checked addresses."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:  # also checked before the request: defence in depth
            self.policy.check_host(host)
        except OutboundRefused:
            try:  # a name declared in Unicode arrives here IDNA-encoded
                unicode_host = host.encode().decode("idna") if "xn--" in host else None
            except UnicodeError:
                unicode_host = None
            if unicode_host is None or not host_allowed(unicode_host, self.policy.hosts):
                raise
        try:
            found = await self._inner.resolve(host, port, family)
        except socket.gaierror as exc:
            raise OutboundRefused(f"host {host!r} does not resolve ({exc.strerror})") from None
        check_addresses(host, [r["host"] for r in found], self.policy)
        return found

    async def close(self) -> None:
        await self._inner.close()


def _key(policy: OutboundPolicy) -> tuple:
    return (
        policy.skill_id,
        tuple(policy.hosts),
        tuple(sorted(policy.secrets.items())),
        tuple(policy.allow_private),
        policy.max_response_bytes,
        policy.max_redirects,
    )


@dataclass
class _Entry:
    session: aiohttp.ClientSession
    users: int = 0
    evicted: bool = False


class OutboundSessions:
    """The outbound sessions of one event loop, one per distinct policy (at most
    ``max_sessions``; the least recently used is closed once no call uses it)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._closing: set[asyncio.Task] = set()

    def _new(self, policy: OutboundPolicy) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=CheckedResolver(policy), limit=100, limit_per_host=20
        )
        # redirects are followed by hand (each hop re-checked); bodies are decompressed by
        # the caller under its size limit; no proxy or .netrc from the environment
        return aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)

    def _close_later(self, session: aiohttp.ClientSession) -> None:
        task = asyncio.get_running_loop().create_task(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @asynccontextmanager
    async def use(self, policy: OutboundPolicy) -> AsyncIterator[aiohttp.ClientSession]:
        """The session of ``policy`` for the duration of one call."""
        key = _key(policy)
        entry = self._entries.get(key)
        if entry is None or entry.session.closed:
            entry = self._entries[key] = _Entry(self._new(policy))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_sessions:
            _, old = self._entries.popitem(last=False)
            old.evicted = True
            if old.users == 0:
                self._close_later(old.session)
        entry.users += 1
        try:
            yield entry.session
        finally:
            entry.users -= 1
            if entry.evicted and entry.users == 0:
                self._close_later(entry.session)

    async def close(self) -> None:
        """Close every session (waits for sessions being closed after eviction)."""
        entries, self._entries = list(self._entries.values()), OrderedDict()
        for entry in entries:
            await entry.session.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OutboundSessions] = (
    weakref.WeakKeyDictionary()
)


def outbound_sessions() -> OutboundSessions:
    """The outbound sessions of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    sessions = _BY_LOOP.get(loop)
    if sessions is None:
        sessions = _BY_LOOP[loop] = OutboundSessions()
    return sessions


def outbound_session(policy: OutboundPolicy):
    """``async with outbound_session(policy) as session:`` the shared session of ``policy``
    on the running loop."""
    return outbound_sessions().use(policy)


async def close_outbound_sessions() -> None:
    """Close the running loop's outbound sessions (on shutdown; later calls open new ones)."""
    sessions = _BY_LOOP.pop(asyncio.get_running_loop(), None)
    if sessions is not None:
        await sessions.close()


@atexit.register
def _close_at_exit() -> None:
    """Best effort for loops still alive at exit (the notebook's private loop thread)."""
    for loop, sessions in list(_BY_LOOP.items()):
        if loop.is_closed():
            continue
        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(sessions.close(), loop).result(2)
            else:
                loop.run_until_complete(sessions.close())
        except Exception:  # noqa: BLE001 - the process is exiting anyway
            pass
