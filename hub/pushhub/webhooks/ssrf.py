"""Which addresses a delivery may reach.

The checks on addresses and URLs are pure. :class:`GuardedTransport` applies them where it matters:
it resolves the host itself when it opens a connection, refuses if any resolved address is
forbidden, and connects to the address it checked, so a DNS answer that changes between the check
and the connection (DNS rebinding) cannot slip through. It never follows redirects (httpx does not
by default, and the dispatcher never asks it to) and ignores proxy environment variables.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore
import httpx

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


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then connects to the checked address (TLS still verifies the host name)."""

    def __init__(self, allow: Sequence[IPNetwork], resolver: Resolver = system_resolver) -> None:
        self.allow = list(allow)
        self.resolver = resolver
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                resolved = await asyncio.wait_for(self.resolver(host, port), timeout)
            except (OSError, TimeoutError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolved]
            if not addresses:
                raise httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            check_address(address, self.allow)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(str(address), port, timeout=timeout,
                                                    local_address=local_address, socket_options=socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection goes through :class:`GuardedBackend`."""

    def __init__(self, allow: Sequence[IPNetwork], resolver: Resolver = system_resolver,
                 limits: httpx.Limits | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=None, max_keepalive_connections=100)
        ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx offers no public hook for the network backend: replace the pool it built with an
        # equivalent one that connects through the guard.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow, resolver),
        )
