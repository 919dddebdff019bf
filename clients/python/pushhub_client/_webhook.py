"""Verifying one webhook delivery: headers, signature and timestamp (pure; the clock is passed in)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import InvalidSignature, MissingHeaders, StaleTimestamp
from ._signature import decode_secret, signature_matches

DEFAULT_TOLERANCE = 300.0
MAX_ID_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Webhook:
    """A delivery whose signature and timestamp were checked."""

    id: str
    timestamp: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if not value:
        raise MissingHeaders(f"the {name} header is missing")
    return value


def keys_of(secrets: str | bytes | Sequence[str | bytes]) -> list[bytes]:
    items = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    if not items:
        raise ValueError("give at least one webhook secret")
    return [decode_secret(s) for s in items]


def verify_webhook(secrets: str | bytes | Sequence[str | bytes], headers: Mapping[str, str], body: bytes, *,
                   tolerance: float = DEFAULT_TOLERANCE, now: float | None = None) -> Webhook:
    """Check a Standard Webhooks delivery against the raw ``body`` bytes.

    ``secrets`` is one ``whsec_…`` secret or several (during a rotation). Raises
    :class:`MissingHeaders`, :class:`InvalidSignature`, or :class:`StaleTimestamp` when the
    timestamp is more than ``tolerance`` seconds away from ``now`` (default: the current time).
    """
    return _verify(keys_of(secrets), headers, body, tolerance, time.time() if now is None else now)


def _verify(keys: list[bytes], headers: Mapping[str, str], body: bytes, tolerance: float, now: float) -> Webhook:
    msg_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")
    if len(msg_id) > MAX_ID_LENGTH:
        raise MissingHeaders(f"the webhook-id header is longer than {MAX_ID_LENGTH} characters")
    if not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
        raise MissingHeaders("the webhook-timestamp header must be integer Unix seconds")
    if not signature_matches(keys, msg_id, raw_timestamp, body, signature):
        raise InvalidSignature("no webhook signature matches the body")
    timestamp = int(raw_timestamp)
    if timestamp < now - tolerance:
        raise StaleTimestamp(f"the webhook timestamp is more than {tolerance:g} s old")
    if timestamp > now + tolerance:
        raise StaleTimestamp(f"the webhook timestamp is more than {tolerance:g} s in the future")
    return Webhook(msg_id, timestamp, body)
