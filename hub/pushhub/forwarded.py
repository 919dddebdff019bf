"""Which address a request comes from when proxies stand in front of the hub (pure).

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the proxies named by
``--forwarded-allow-ips``; by default none is, so a client cannot claim another address by sending
the header itself. Behind trusted proxies the client is the right-most address of
``X-Forwarded-For`` that is not itself a trusted proxy (each proxy appends the address it saw).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .errors import BadRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Proxies:
    """The proxies whose forwarding headers are believed: addresses or CIDR networks, or ``*``."""

    __slots__ = ("everyone", "networks")

    def __init__(self, specs: Iterable[str] = ()) -> None:
        self.everyone = False
        self.networks: list[Network] = []
        for spec in specs:
            if spec == "*":
                self.everyone = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(spec, strict=False))
            except ValueError as exc:
                raise BadRequest(f"--forwarded-allow-ips: {spec!r} is not an IP address or network") from exc

    def __bool__(self) -> bool:
        return self.everyone or bool(self.networks)

    def trusts(self, host: str) -> bool:
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: list[str]) -> str:
        """The client's address: ``peer`` unless ``peer`` is a trusted proxy that forwarded one."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            if hop and not self.trusts(hop):
                return hop
        return hops[0] or peer
