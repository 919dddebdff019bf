"""Who may read ``/metrics`` (pure).

The metrics name no secrets but tell an outsider how busy the hub is and which parts fail, so by
default only a peer on the loopback interface (a Prometheus or an agent on the same host) may read
them. With a metrics key configured (``--metrics-key``, repeatable for rotation) the key is
required instead, from any address: ``Authorization: Bearer KEY``, which Prometheus sends with
``authorization: {credentials_file: ...}`` in a scrape config.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from .errors import Forbidden, Unauthorized


class MetricsAccess:
    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = [key.encode() for key in keys]

    def check(self, bearer_token: str | None, peer: str | None) -> None:
        """Raise unless a request with this bearer token from this TCP peer may read the metrics."""
        if self.keys:
            presented = (bearer_token or "").encode("utf-8", "replace")
            found = False
            for key in self.keys:
                found |= hmac.compare_digest(presented, key)
            if not found:
                raise Unauthorized("/metrics needs 'Authorization: Bearer' with a metrics key (--metrics-key)")
        elif not is_loopback(peer):
            raise Forbidden(f"/metrics answers only loopback peers, not {peer}, unless a metrics key is "
                            "configured (--metrics-key)")


def is_loopback(peer: str | None) -> bool:
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
