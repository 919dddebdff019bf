"""From a verified request to an event draft (pure): body decoding, delivery id, event type.

Where a value comes from is written as a *field reference*:

``header:NAME``        a request header (case-insensitive)
``body:a.b.c``         a field of the JSON body, dotted for nested objects
``const:VALUE``        a fixed value (event types only)

A source lists references in order; the first that yields a value wins.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ..channels import TYPE_MAX_LENGTH
from ..errors import BadRequest
from ..events import ID_MAX_LENGTH, EventDraft

# What each scheme's provider puts where, unless the source says otherwise.
DEFAULT_ID = {
    "standard": ("header:webhook-id", "header:svix-id"),
    "github": ("header:x-github-delivery",),
    "stripe": ("body:id",),
    "slack": ("body:event_id",),
    "shopify": ("header:x-shopify-event-id", "header:x-shopify-webhook-id"),
    "hmac": (),
    "none": (),
}
DEFAULT_TYPE = {
    "standard": ("body:type",),
    "github": ("header:x-github-event",),
    "stripe": ("body:type",),
    "slack": ("body:event.type", "body:type", "body:command"),
    "shopify": ("header:x-shopify-topic",),
    "hmac": ("body:type",),
    "none": ("body:type",),
}
FALLBACK_TYPE = "webhook"
_KINDS = ("header", "body", "const")
_NOT_TYPE_CHARS = re.compile(r"[^A-Za-z0-9_\-.:/]")


def check_refs(refs: Sequence[str], *, allow_const: bool) -> tuple[str, ...]:
    """Validate field references from the configuration."""
    for ref in refs:
        kind, sep, name = ref.partition(":")
        if not sep or kind not in _KINDS or not name or (kind == "const" and not allow_const):
            kinds = "header:NAME, body:PATH" + (" or const:VALUE" if allow_const else "")
            raise BadRequest(f"invalid field reference {ref!r}: expected {kinds}")
    return tuple(refs)


def decode_body(body: bytes, content_type: str) -> Any:
    """The request body as event data: JSON when it parses, form fields for
    ``application/x-www-form-urlencoded``, else the text (undecodable bytes replaced)."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        payload = fields.get("payload")  # Slack interactivity wraps its JSON in a form field
        if payload is not None:
            try:
                return orjson.loads(payload)
            except orjson.JSONDecodeError:
                pass
        return fields
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


def lookup(ref: str, headers: Mapping[str, str], data: Any) -> str | None:
    """The string a field reference points at, or ``None``."""
    kind, _, name = ref.partition(":")
    if kind == "const":
        return name
    if kind == "header":
        value: Any = headers.get(name.lower())
    else:
        value = data
        for part in name.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text or None


def first(refs: Sequence[str], headers: Mapping[str, str], data: Any) -> str | None:
    for ref in refs:
        value = lookup(ref, headers, data)
        if value is not None:
            return value
    return None


def event_type(value: str | None) -> str:
    """A valid pushhub event type for what a provider sent: other characters become ``_``."""
    if not value:
        return FALLBACK_TYPE
    return _NOT_TYPE_CHARS.sub("_", value)[:TYPE_MAX_LENGTH]


def delivery_key(delivery_id: str) -> str:
    """A bounded key for a provider's delivery id."""
    if len(delivery_id) <= ID_MAX_LENGTH and delivery_id.isprintable():
        return delivery_id
    return "sha256:" + hashlib.sha256(delivery_id.encode("utf-8", "replace")).hexdigest()


def draft(source: str, type_: str, delivery_id: str | None, data: Any) -> EventDraft:
    meta: dict[str, Any] = {"source": source}
    if delivery_id is not None:
        meta["delivery_id"] = delivery_id
    return EventDraft.from_json({"type": type_, "data": data, "meta": meta})
