"""``Idempotency-Key`` on the publish API (pure): what a key's record holds and how a retry is
recognised.

A record keeps the fingerprint of the first request (its channel and exact body) and the answer
it got. A retry with the same key and fingerprint gets that answer again without publishing; the
same key with another fingerprint is a client bug and gets :class:`KeyReused`.
"""

from __future__ import annotations

import hashlib

import orjson

from .errors import BadRequest

MAX_KEY_LENGTH = 255


class KeyReused(BadRequest):
    status = 422
    code = "idempotency_key_reused"


def check_key(key: str) -> str:
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters")
    return key


def fingerprint(channel: str, body: bytes) -> str:
    return hashlib.sha256(channel.encode() + b"\0" + body).hexdigest()


def record(fingerprint: str, answer: bytes) -> bytes:
    return orjson.dumps({"fingerprint": fingerprint, "answer": answer.decode()})


def replay(stored: bytes, fingerprint: str, key: str) -> bytes:
    """The answer to give for a request with ``fingerprint`` whose key already has ``stored``."""
    saved = orjson.loads(stored)
    if saved["fingerprint"] != fingerprint:
        raise KeyReused(f"Idempotency-Key {key!r} was already used for a different request (another "
                        "channel or body); use a new key for a new request")
    return str(saved["answer"]).encode()
