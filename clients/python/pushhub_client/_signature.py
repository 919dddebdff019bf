"""Standard Webhooks signatures (pure).

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; a signature is ``v1,`` followed
by the base64 HMAC-SHA256 of it, keyed with the base64-decoded part of the ``whsec_…`` secret. The
``webhook-signature`` header holds one or more signatures separated by spaces (several while a
secret is being rotated); a delivery is authentic if any ``v1`` signature matches any key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"


def decode_secret(secret: str | bytes) -> bytes:
    """The HMAC key of a secret: ``whsec_`` + base64 (the prefix is optional), or raw key bytes."""
    if isinstance(secret, bytes):
        key = secret
    else:
        try:
            key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("a webhook secret is 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, b"%s.%s.%s" % (msg_id.encode(), timestamp.encode(), body), hashlib.sha256).digest()


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,…`` signature of a delivery."""
    return "v1," + base64.b64encode(_digest(decode_secret(secret), msg_id, str(timestamp), body)).decode()


def parse_signatures(header: str) -> list[bytes]:
    """The ``v1`` signatures of a ``webhook-signature`` header, decoded; other versions and
    malformed entries are ignored."""
    found = []
    for entry in header.split():
        version, sep, value = entry.partition(",")
        if version != "v1" or not sep:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def signature_matches(keys: Iterable[bytes], msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether any ``v1`` signature in ``header`` matches under any key. Every comparison runs in
    constant time, and all of them run, so the time taken says nothing about which one matched."""
    candidates = parse_signatures(header)
    matched = False
    for key in keys:
        expected = _digest(key, msg_id, timestamp, body)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    return matched
