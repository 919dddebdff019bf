"""Webhook signature verification (pure: bytes, headers and the current time in, a verdict out).

Every scheme verifies the raw request body before anything parses it, compares in constant time
(:func:`hmac.compare_digest`), accepts any of several secrets (rotation) and fails closed: a
missing or malformed header, an unknown scheme or a timestamp outside the tolerance is a
:class:`SignatureError`.

========== ============================= ===================================================
scheme     header(s)                     signed content → encoding
========== ============================= ===================================================
standard   webhook-id, webhook-timestamp ``{id}.{timestamp}.{body}`` with the base64-decoded
           webhook-signature             part of ``whsec_…`` → ``v1,`` + base64 (several,
                                         space-separated)
github     X-Hub-Signature-256           body → ``sha256=`` + hex
stripe     Stripe-Signature              ``{t}.{body}`` with the whole ``whsec_…`` string →
                                         ``t=…,v1=<hex>[,v1=…]``
slack      X-Slack-Request-Timestamp,    ``v0:{timestamp}:{body}`` → ``v0=`` + hex
           X-Slack-Signature
shopify    X-Shopify-Hmac-SHA256         body → base64
hmac       configurable                  body → hex or base64, optional prefix, sha1/256/512
none       —                             nothing (trusted networks only)
========== ============================= ===================================================

A valid signature vouches only for what it covers, so :func:`verify` answers with a
:class:`Verified`: the headers of the scheme that was checked (a request signed with ``svix-*``
headers loses any ``webhook-*`` ones, which an attacker could add to a replay, and the other way
round), and, for the schemes that sign a timestamp, a fingerprint of the signed content, which
dedupes a replay of a delivery that carries no id (Slack slash commands, Stripe-style bodies
without ``id``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import BadRequest, Unauthorized

SCHEMES = ("standard", "github", "stripe", "slack", "shopify", "hmac", "none")
ALGORITHMS = ("sha1", "sha256", "sha512")
ENCODINGS = ("hex", "base64")
DEFAULT_TOLERANCE = 300.0


class SignatureError(Unauthorized):
    code = "bad_signature"


class StaleTimestamp(SignatureError):
    code = "timestamp_out_of_tolerance"


@dataclass(frozen=True)
class Signature:
    """How one source signs its requests. ``header``, ``algorithm``, ``encoding`` and ``prefix``
    are used by the ``hmac`` scheme only."""

    scheme: str
    secrets: tuple[str, ...] = ()
    tolerance: float = DEFAULT_TOLERANCE
    header: str = "x-webhook-signature"
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise BadRequest(f"unknown signature scheme {self.scheme!r}: expected one of {', '.join(SCHEMES)}")
        if self.scheme != "none" and not self.secrets:
            raise BadRequest(f"the {self.scheme} scheme needs at least one secret")
        if self.algorithm not in ALGORITHMS:
            raise BadRequest(f"unknown algorithm {self.algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
        if self.encoding not in ENCODINGS:
            raise BadRequest(f"unknown encoding {self.encoding!r}: expected hex or base64")
        if self.scheme == "standard":
            for secret in self.secrets:
                standard_key(secret)


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 part after ``whsec_``."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("a Standard Webhooks secret is 'whsec_' followed by base64") from exc


@dataclass(frozen=True)
class Verified:
    """What a valid signature vouches for.

    ``headers``: the request's headers minus those of another variant of the scheme than the one
    verified. ``signed``: the signed content when it includes a timestamp, else ``None``.
    """

    headers: Mapping[str, str]
    signed: bytes | None = None

    @property
    def fingerprint(self) -> str | None:
        """``sha256:`` and the hex digest of the signed content, if it has a timestamp: the same
        request replayed has the same fingerprint, one the provider signed anew has another."""
        return None if self.signed is None else "sha256:" + hashlib.sha256(self.signed).hexdigest()


def verify(spec: Signature, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
    """Raise :class:`SignatureError` unless ``body`` and ``headers`` (lower-case names) carry a
    valid signature by one of ``spec.secrets``, made within ``spec.tolerance`` seconds of ``now``."""
    signed: bytes | None = None
    if spec.scheme == "none":
        pass
    elif spec.scheme == "standard":
        prefix = _standard_prefix(headers)
        signed = _standard(spec, headers, body, now, prefix)
        other = "svix-" if prefix == "webhook-" else "webhook-"
        headers = {k: v for k, v in headers.items() if not k.startswith(other)}
    elif spec.scheme == "github":
        given = _header(headers, "x-hub-signature-256")
        expected = ["sha256=" + _mac(s.encode(), body, "sha256").hex() for s in spec.secrets]
        _match(expected, [given])
    elif spec.scheme == "stripe":
        signed = _stripe(spec, headers, body, now)
    elif spec.scheme == "slack":
        timestamp = _header(headers, "x-slack-request-timestamp")
        _fresh(timestamp, now, spec.tolerance)
        signed = b"v0:" + timestamp.encode() + b":" + body
        _match(["v0=" + _mac(s.encode(), signed, "sha256").hex() for s in spec.secrets],
               [_header(headers, "x-slack-signature")])
    elif spec.scheme == "shopify":
        expected = [base64.b64encode(_mac(s.encode(), body, "sha256")).decode() for s in spec.secrets]
        _match(expected, [_header(headers, "x-shopify-hmac-sha256")])
    elif spec.scheme == "hmac":
        _generic(spec, headers, body)
    else:
        raise SignatureError(f"unknown signature scheme {spec.scheme!r}")
    return Verified(headers, signed)


def _mac(key: bytes, message: bytes, algorithm: str) -> bytes:
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise SignatureError(f"missing {name} header")
    return value


def _match(expected: Iterable[str], given: Sequence[str]) -> None:
    """Constant-time comparison of every expected signature with every given one."""
    found = False
    for candidate in expected:
        for value in given:
            found |= hmac.compare_digest(candidate.encode(), value.strip().encode("utf-8", "replace"))
    if not found:
        raise SignatureError("signature does not match")


def _fresh(timestamp: str, now: float, tolerance: float) -> None:
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(f"malformed timestamp {timestamp[:20]!r}")
    if abs(now - int(timestamp)) > tolerance:
        raise StaleTimestamp(f"timestamp {timestamp} is more than {tolerance:g} s away from the hub's clock")


def _standard_prefix(headers: Mapping[str, str]) -> str:
    """Standard Webhooks' own header names, or Svix's older ``svix-*`` ones."""
    return "webhook-" if "webhook-signature" in headers else "svix-"


def _standard(spec: Signature, headers: Mapping[str, str], body: bytes, now: float, prefix: str) -> bytes:
    msg_id = _header(headers, prefix + "id")
    timestamp = _header(headers, prefix + "timestamp")
    _fresh(timestamp, now, spec.tolerance)
    signed = f"{msg_id}.{timestamp}.".encode("utf-8", "replace") + body
    given = [part.removeprefix("v1,") for part in _header(headers, prefix + "signature").split(" ")
             if part.startswith("v1,")]
    _match([base64.b64encode(_mac(standard_key(s), signed, "sha256")).decode() for s in spec.secrets], given)
    return signed


def _stripe(spec: Signature, headers: Mapping[str, str], body: bytes, now: float) -> bytes:
    timestamp = ""
    given = []
    for item in _header(headers, "stripe-signature").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            given.append(value)
    if not timestamp or not given:
        raise SignatureError("Stripe-Signature needs t= and at least one v1=")
    _fresh(timestamp, now, spec.tolerance)
    signed = timestamp.encode() + b"." + body
    _match([_mac(s.encode(), signed, "sha256").hex() for s in spec.secrets], given)
    return signed


def _generic(spec: Signature, headers: Mapping[str, str], body: bytes) -> None:
    value = _header(headers, spec.header.lower())
    if spec.prefix and not value.startswith(spec.prefix):
        raise SignatureError(f"{spec.header} must start with {spec.prefix!r}")
    value = value.removeprefix(spec.prefix)
    digests = [_mac(s.encode(), body, spec.algorithm) for s in spec.secrets]
    if spec.encoding == "hex":
        _match([d.hex() for d in digests], [value.lower()])
    else:
        _match([base64.b64encode(d).decode() for d in digests], [value])
