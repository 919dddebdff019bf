"""Exactly-once publishing (pure): what an idempotency record holds, and the answer it replays.

A publish with an ``Idempotency-Key``, and an ingested webhook with a delivery id, carry a record
(:class:`~pushhub.backends.base.Once`) that the backend stores in the same atomic step as the
append. A record is found by channel, *scope* and key:

- a publish's scope is its publisher (:attr:`pushhub.auth.Grant.publisher`: the hash of its key,
  or a token's ``sub``; ``""`` for everyone when the hub runs open), so two publishers never
  collide and nobody can read another's answers by guessing keys;
- an ingested webhook's scope is ``ingest:<source>`` and its key the delivery id (or, for a
  request without one, ``ingest-signed:<source>`` and the hash of what its signature covers);
- records migrated from before scopes existed have :data:`LEGACY_SCOPE` and match any publisher.

A record keeps the request's fingerprint (its channel and exact body) and the ids of its events;
the backend adds where they were appended. A retry with the same fingerprint gets the same answer
again, rebuilt from the record; the same key with another body is a client bug (:class:`KeyReused`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from .backends.base import LEGACY_SCOPE, Recorded
from .errors import BadRequest

MAX_KEY_LENGTH = 255
PUBLISH = "publish:"  # the key prefixes of the records kept before the upgrade to scoped records
INGEST = "ingest:"


class KeyReused(BadRequest):
    status = 422
    code = "idempotency_key_reused"


def check_key(key: str) -> str:
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters")
    return key


def fingerprint(channel: str, body: bytes) -> str:
    return hashlib.sha256(channel.encode() + b"\0" + body).hexdigest()


def ingest_scope(source: str, *, signed: bool = False) -> str:
    """The scope of a source's records: keyed by delivery id, or by the hash of a signed request
    that carries none (``signed``)."""
    return ("ingest-signed:" if signed else INGEST) + source


def record(fingerprint: str | None, ids: Sequence[str], batch: bool) -> bytes:
    """The value of a record: ``fingerprint`` is ``None`` when any body counts as the same request."""
    return orjson.dumps({"fingerprint": fingerprint, "ids": list(ids), "batch": batch})


def positions(channel: str, epoch: str, first: int, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The answer's description of events ``ids`` appended to ``channel`` from offset ``first``."""
    return [{"id": event_id, "channel": channel, "epoch": epoch, "offset": first + index,
             "cursor": f"{epoch}.{first + index}"} for index, event_id in enumerate(ids)]


def answer(described: list[dict[str, Any]], batch: bool) -> bytes:
    return orjson.dumps({"events": described} if batch else described[0])


def replay(channel: str, recorded: Recorded, fingerprint: str | None, key: str) -> tuple[list[dict[str, Any]], bool]:
    """The events to answer a request with ``fingerprint`` whose key has ``recorded``, and whether
    the request was a batch."""
    saved = orjson.loads(recorded.value)
    if fingerprint is not None and saved["fingerprint"] not in (None, fingerprint):
        raise KeyReused(f"Idempotency-Key {key!r} was already used for a different request on this channel "
                        "(another body); use a new key for a new request")
    return positions(channel, recorded.epoch, recorded.first, saved["ids"]), bool(saved["batch"])


def from_legacy(key: str, value: bytes) -> tuple[str, str, str, Recorded] | None:
    """A record of the unscoped dedupe store (release c5059d1 and before) as (channel, scope, key,
    record); ``None`` for a key it cannot have written."""
    if key.startswith(PUBLISH):
        saved = orjson.loads(value)
        given = orjson.loads(saved["answer"])
        batch = "events" in given
        events = given["events"] if batch else [given]
        return (events[0]["channel"], LEGACY_SCOPE, key.removeprefix(PUBLISH),
                Recorded(record(saved["fingerprint"], [e["id"] for e in events], batch), events[0]["epoch"],
                         events[0]["offset"]))
    if key.startswith(INGEST):
        source, sep, delivery = key.removeprefix(INGEST).partition(":")
        if not sep:
            return None
        event = orjson.loads(value)
        return (event["channel"], ingest_scope(source), delivery,
                Recorded(record(None, [event["id"]], False), event["epoch"], event["offset"]))
    return None
