"""Who a skill may call over HTTP, with which secrets: the ``OutboundPolicy``.

A skill calls only hosts that its manifest declares (``outbound:``, with the ``http.outbound``
permission) *and* the operator approved when installing it. Secrets reach a request only by
names the operator granted to that skill in the runtime configuration (``skills.secrets``);
the values come from the runtime's environment. Private, loopback, link-local and other
non-public addresses are refused unless the operator allows them
(``security.outbound_allow_private``: hosts or networks such as ``127.0.0.1/32``); names are
resolved first and every resolved address is checked (the request then goes to the checked
address, so a second DNS answer cannot swap it).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "OutboundPolicy",
    "OutboundRefused",
    "check_addresses",
    "host_allowed",
    "normalize_host",
    "resolve_checked",
]

MAX_RESPONSE_BYTES = 1 * 2**20
MAX_REDIRECTS = 3


class OutboundRefused(PermissionError):
    """A request the policy does not allow (names the host or address and the reason)."""


def normalize_host(host: str) -> str:
    """Lower-case host without a trailing dot (IPv6 without brackets)."""
    return host.strip().strip("[]").rstrip(".").lower()


def host_allowed(host: str, patterns) -> bool:
    """``host`` matches one of ``patterns`` (exact names, or ``*.example.com`` for subdomains)."""
    host = normalize_host(host)
    for pat in patterns:
        pat = normalize_host(str(pat))
        if pat.startswith("*."):
            if host.endswith(pat[1:]) and host != pat[2:]:
                return True
        elif host == pat:
            return True
    return False


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


@dataclass(frozen=True)
class OutboundPolicy:
    """Hosts, secrets and address rules for one skill's HTTP actions."""

    hosts: tuple[str, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict)
    allow_private: tuple[str, ...] = ()
    max_response_bytes: int = MAX_RESPONSE_BYTES
    max_redirects: int = MAX_REDIRECTS
    skill_id: str = ""

    def __repr__(self) -> str:  # never shows secret values
        return (
            f"OutboundPolicy(skill={self.skill_id!r}, hosts={list(self.hosts)!r}, "
            f"secrets={sorted(self.secrets)!r}, allow_private={list(self.allow_private)!r})"
        )

    @classmethod
    def for_skill(
        cls,
        manifest,
        approved_hosts=None,
        granted: list[str] | tuple[str, ...] = (),
        allow_private=(),
        environ: Mapping[str, str] | None = None,
    ) -> OutboundPolicy:
        """The policy of an installed skill: declared ∩ approved hosts, granted secrets.

        ``approved_hosts`` None means "as declared" (a source folder its author runs)."""
        env = os.environ if environ is None else environ
        declared = [normalize_host(h) for h in getattr(manifest, "outbound", []) or []]
        if "http.outbound" not in (manifest.permissions or []):
            declared = []
        if approved_hosts is not None:
            approved = {normalize_host(h) for h in approved_hosts}
            declared = [h for h in declared if h in approved]
        secrets = {name: env[name] for name in granted if name in env}
        return cls(
            hosts=tuple(declared),
            secrets=secrets,
            allow_private=tuple(str(a) for a in allow_private),
            skill_id=manifest.id,
        )

    def check_host(self, host: str) -> None:
        """Refuse a host the skill may not call (before any DNS lookup)."""
        if not host_allowed(host, self.hosts):
            declared = ", ".join(self.hosts) or "none"
            raise OutboundRefused(
                f"skill {self.skill_id or '?'} may not call host {normalize_host(host)!r}: "
                f"not among its declared and operator-approved hosts ({declared})"
            )

    def private_allowed(self, host: str, ip) -> bool:
        for item in self.allow_private:
            try:
                if ip in ipaddress.ip_network(item, strict=False):
                    return True
            except ValueError:
                if host_allowed(host, [item]):
                    return True
        return False


def check_addresses(host: str, ips, policy: OutboundPolicy) -> None:
    """Raise :class:`OutboundRefused` naming the first of ``ips`` (the addresses ``host``
    resolved to) that is not public and not allowed by ``policy``."""
    if not ips:
        raise OutboundRefused(f"host {normalize_host(host)!r} has no address")
    for ip in ips:
        ip = ip if not isinstance(ip, str) else ipaddress.ip_address(ip.split("%")[0])
        if not _is_public(ip) and not policy.private_allowed(normalize_host(host), ip):
            raise OutboundRefused(
                f"host {normalize_host(host)!r} resolves to {ip}, a private, loopback or "
                "link-local address; refused unless the operator allows it "
                "(security.outbound_allow_private)"
            )


def resolve_checked(host: str, port: int, policy: OutboundPolicy) -> str:
    """The first address of ``host`` after checking every resolved address against the
    policy; raises :class:`OutboundRefused` naming the address that is not public."""
    host = normalize_host(host)
    try:
        ips = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OutboundRefused(f"host {host!r} does not resolve ({exc.strerror})") from None
        ips = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            if ip not in ips:
                ips.append(ip)
    check_addresses(host, ips, policy)
    return str(ips[0])
