"""Signing outgoing requests (pure).

Standard Webhooks (the default): the signed content is ``{webhook-id}.{webhook-timestamp}.{body}``,
the key is the base64-decoded part of the secret after ``whsec_``, and ``webhook-signature`` is
``v1,`` + base64(HMAC-SHA256); during a secret rotation one signature per live secret, separated by
spaces.

The simpler form: ``X-Webhook-Signature`` is the hex HMAC-SHA256 of the body alone, keyed with the
whole secret string as UTF-8, and ``X-Webhook-Timestamp`` carries the send time (several hex
signatures are separated by spaces during a rotation).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence

from .errors import InvalidEndpoint

PREFIX = "whsec_"
KEY_BYTES = 32
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64

STANDARD = "standard"
SIMPLE = "simple"
SCHEMES = (STANDARD, SIMPLE)


def generate_secret(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    return PREFIX + base64.b64encode(random_bytes(KEY_BYTES)).decode()


@functools.lru_cache(maxsize=4096)  # decoded once per secret, not once per signature
def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; raises :class:`InvalidEndpoint` saying what is wrong."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise InvalidEndpoint(f"a secret must start with {PREFIX!r} followed by base64")
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEndpoint(f"the part of the secret after {PREFIX!r} is not valid base64") from exc
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InvalidEndpoint(f"a secret must decode to {MIN_KEY_BYTES}-{MAX_KEY_BYTES} bytes, not {len(key)}")
    return key


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    return Signer(STANDARD).headers([secret], msg_id, timestamp, body)["webhook-signature"]


def sign_simple(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


BLOCK = 64  # bytes in one block of SHA-256, HMAC's key length
_INNER = bytes(x ^ 0x36 for x in range(256))  # HMAC's ipad, as a byte translation table
_OUTER = bytes(x ^ 0x5C for x in range(256))  # and its opad


class _Keyed:
    """HMAC-SHA256 (RFC 2104) under one key, with the key's two padded blocks hashed once: a MAC is
    two copies of those hash states, two updates and two digests, all in C."""

    __slots__ = ("inner", "outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(BLOCK, b"\0")
        self.inner = hashlib.sha256(key.translate(_INNER))
        self.outer = hashlib.sha256(key.translate(_OUTER))

    def digest(self, content: bytes) -> bytes:
        inner = self.inner.copy()
        inner.update(content)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class Signer:
    """Signs one endpoint's requests in its ``scheme``: each secret's key is decoded and hashed into
    HMAC's keyed state once (:class:`_Keyed`)."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.signature_header = "x-webhook-signature" if scheme == SIMPLE else "webhook-signature"
        self._keyed: dict[str, _Keyed] = {}

    def _mac(self, secret: str) -> _Keyed:
        keyed = self._keyed.get(secret)
        if keyed is None:
            key = secret.encode() if self.scheme == SIMPLE else secret_key(secret)
            keyed = self._keyed[secret] = _Keyed(key)
        return keyed

    def _v1(self, secret: str, content: bytes) -> str:
        return "v1," + binascii.b2a_base64(self._mac(secret).digest(content), newline=False).decode()

    def headers(self, live_secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The signature headers of one request, signed with every secret in ``live_secrets``."""
        if self.scheme == SIMPLE:
            return {"x-webhook-id": msg_id, "x-webhook-timestamp": str(timestamp),
                    self.signature_header: " ".join(self._mac(s).digest(body).hex() for s in live_secrets)}
        content = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
        signature = (self._v1(live_secrets[0], content) if len(live_secrets) == 1  # the usual case: no join
                     else " ".join(self._v1(s, content) for s in live_secrets))
        return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), self.signature_header: signature}


def headers(scheme: str, live_secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The signature headers of one request, signed with every secret in ``live_secrets``."""
    return Signer(scheme).headers(live_secrets, msg_id, timestamp, body)
