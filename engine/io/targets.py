"""Where alerts may be sent: http(s) URLs whose host is a public address (no SSRF).

A webhook, Slack or Discord URL is checked when a rule is saved: its scheme must be http or
https, it needs a host, and every address the host resolves to must be public. Loopback,
private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 with the cloud
metadata service, fe80::/10), shared (100.64/10), multicast, reserved and unspecified
addresses are refused, as are IPv6 forms that embed one of them (IPv4-mapped
::ffff:a.b.c.d, 6to4, Teredo, NAT64). Cloud instance-metadata endpoints stay refused even
when private targets are allowed, as the delivery worker refuses them (no alert needs
them). The delivery worker checks again at send time: DNS answers can change.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

__all__ = ["Resolver", "forbidden_reason", "resolve_host", "target_problem"]

Resolver = Callable[[str], list[str]]
"""Host name -> the IP addresses it resolves to (as text)."""

_SCHEMES: Final = ("http", "https")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA: Final = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
"""Instance-metadata services (AWS/GCP/Azure, ECS task roles, AWS IPv6, Alibaba)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def resolve_host(host: str) -> list[str]:
    """The addresses `host` resolves to (socket.getaddrinfo), scope ids stripped."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _metadata(address: IPAddress) -> bool:
    """Whether `address` (or the IPv4 address it embeds) is a cloud metadata service."""
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return address in _METADATA or (embedded is not None and embedded in _METADATA)


def forbidden_reason(address: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why alerts may not go to `address` ("loopback", "private", ...), or None if they
    may. `allow_private` lets every address through but cloud metadata services."""
    if _metadata(address):
        return "cloud metadata"
    if allow_private:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = forbidden_reason(embedded)
            if inner is not None:
                return f"{inner} (embedded in {address})"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for reason, applies in checks:
        if applies:
            return reason
    if not address.is_global:
        return "non-public"
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _url_problem(url: str) -> tuple[str | None, str]:
    """(what is wrong with `url`'s form or None, its host)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})", ""
    problem = None
    if parts.scheme.lower() not in _SCHEMES:
        problem = f"must be an http or https URL, got scheme {parts.scheme or 'none'!r}"
    elif not parts.hostname:
        problem = "must name a host"
    elif parts.username is not None or parts.password is not None:
        problem = "must not carry credentials before the host (put secrets in the channel)"
    elif port == 0:
        problem = "must not use port 0"
    return problem, parts.hostname or ""


def _addresses(host: str, resolve: Resolver) -> tuple[list[IPAddress], str | None]:
    """The addresses `host` stands for (itself if it is one), or why there are none."""
    literal = _literal_address(host)
    if literal is not None:
        return [literal], None
    try:
        found = resolve(host)
    except (OSError, UnicodeError) as exc:
        return [], f"host {host!r} does not resolve ({exc})"
    addresses = [a for a in map(_literal_address, found) if a is not None]
    if not addresses:
        return [], f"host {host!r} does not resolve to any address"
    return addresses, None


def target_problem(
    url: str, *, allow_private: bool = False, resolve: Resolver | None = None
) -> str | None:
    """What is wrong with `url` as an alert target (a sentence), or None if it is fine.

    Host names are resolved with `resolve` (default: `resolve_host`); a host that does not
    resolve is refused, since where it points cannot be checked. `allow_private` (a trusted
    on-premises setup) lets private addresses and unresolvable hosts through, but not
    cloud metadata services nor malformed URLs.
    """
    problem, host = _url_problem(url)
    if problem is not None:
        return problem
    addresses, problem = _addresses(host, resolve or resolve_host)
    for address in addresses:
        reason = forbidden_reason(address, allow_private=allow_private)
        if reason is not None:
            where = host if str(address) == host.split("%", 1)[0] else f"{host} ({address})"
            return f"points to a {reason} address: {where}; alerts go to public hosts only"
    # a host the API cannot resolve may still be reachable on a trusted private network
    return None if allow_private else problem
