"""Dashboard session tickets (pure): the value of the ``pushhub_dashboard`` cookie.

A ticket is ``<expiry>.<hex HMAC-SHA256 keyed by an admin key over "pushhub-dashboard:<expiry>">``.
It holds no secret and no state lives on the hub, so every worker process (and a restarted hub)
accepts it, and removing the admin key from the configuration revokes every ticket it signed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

LABEL = b"pushhub-dashboard:"


def issue(key: bytes, expires: int) -> str:
    """A ticket signed by the admin key ``key``, valid until ``expires`` (seconds since the epoch)."""
    return f"{expires}.{_mac(key, expires)}"


def admin_key(ticket: str | None, keys: Sequence[bytes], now: float) -> bytes | None:
    """The admin key among ``keys`` that signed ``ticket``, if it did and the ticket has not expired."""
    raw_expires, _, mac = (ticket or "").partition(".")
    if not raw_expires.isdigit() or len(raw_expires) > 12 or int(raw_expires) <= now:
        return None
    found = None
    for key in keys:
        if hmac.compare_digest(mac.encode("ascii", "replace"), _mac(key, int(raw_expires)).encode()):
            found = key
    return found


def _mac(key: bytes, expires: int) -> str:
    return hmac.new(key, LABEL + str(expires).encode(), hashlib.sha256).hexdigest()
