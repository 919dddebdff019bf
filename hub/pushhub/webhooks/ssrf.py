"""Which addresses a delivery may reach.

The checks on addresses and URLs are pure. :class:`GuardedResolver` applies them where it matters:
the HTTP client's connector asks it for the addresses of a host when it opens a connection; it
refuses if any of them is forbidden, and the connector connects to the addresses it checked, so a
DNS answer that changes between the check and the connection (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from .errors import Blocked, InvalidEndpoint

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def parse_networks(cidrs: Iterable[str]) -> list[IPNetwork]:
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise InvalidEndpoint(f"invalid network {cidr!r}: use CIDR notation, e.g. 10.0.0.0/8") from exc
    return networks


def forbidden_reason(address: IPAddress) -> str | None:
    """Why deliveries may not go to ``address`` by default, or ``None`` if they may."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped address"
        if address in NAT64 or address.sixtofour is not None or address.teredo is not None:
            return "an IPv6 transition address"
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("CGNAT", isinstance(address, ipaddress.IPv4Address) and address in CGNAT),
        ("private", address.is_private),
        ("reserved", address.is_reserved or not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"a {name} address"
    return None


def check_address(address: IPAddress, allow: Sequence[IPNetwork]) -> None:
    if any(address.version == net.version and address in net for net in allow):
        return
    reason = forbidden_reason(address)
    if reason is not None:
        raise Blocked(f"{address} is {reason}; deliveries go only to public addresses unless allowlisted")


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` names without DNS: an IP literal, or a shorthand IPv4 form."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ipv4_shorthand(host)


def ipv4_shorthand(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host such as ``127.1``, ``0x7f000001``, ``2130706433``, ``0x7f.0.0.01``
    or ``0`` stands for, read as the WHATWG URL standard's IPv4 parser and ``inet_aton`` (which
    ``getaddrinfo`` uses) read it: one to four parts, each decimal, ``0x`` hex or ``0`` octal, the
    last filling the remaining bytes. ``None`` if ``host`` is not of that form."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    *leading, last = typing.cast(list[int], numbers)
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str) -> int | None:
    if not part.isascii():
        return None
    text, base = part, 10
    if text[:2] in ("0x", "0X"):
        text, base = text[2:] or "0", 16
    elif len(text) > 1 and text.startswith("0"):
        text, base = text[1:], 8
    if not text or len(text) > 12:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def normalise_host(url: str) -> str:
    """``url`` with a shorthand IPv4 host written as the dotted quad it stands for, so what is
    stored, shown and checked is the address that is connected to."""
    parsed = httpx.URL(url)
    shorthand = ipv4_shorthand(parsed.host)
    if shorthand is None or str(shorthand) == parsed.host:
        return url
    return str(parsed.copy_with(host=str(shorthand)))


def check_url(url: str, *, https_only: bool, allow: Sequence[IPNetwork]) -> None:
    """The checks that need no DNS: scheme, and the host when it is a literal address."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https"):
        raise Blocked(f"scheme {parsed.scheme!r} is not allowed: use http or https")
    if https_only and parsed.scheme != "https":
        raise Blocked("only https URLs are allowed (webhook_https_only)")
    address = literal_address(parsed.host)
    if address is not None:
        check_address(address, allow)


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses a name if any address it resolves to is forbidden. The
    connector connects to the addresses this returns, so what is checked is what is connected to
    (TLS still verifies the host name). aiohttp asks no resolver for a literal address:
    :func:`check_url` covers those."""

    def __init__(self, allow: Sequence[IPNetwork], resolver: Resolver = system_resolver) -> None:
        self.allow = list(allow)
        self.resolver = resolver

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in await self.resolver(host, port)]
        if not addresses:
            raise OSError(f"{host} has no address")
        for address in addresses:
            check_address(address, self.allow)
        return [ResolveResult(hostname=host, host=str(address), port=port,
                              family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                              proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
                for address in addresses]

    async def close(self) -> None:
        pass
