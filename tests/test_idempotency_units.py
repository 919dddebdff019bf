"""Idempotency records, publisher identities and the fault point, on plain values."""

from __future__ import annotations

import time

import jwt
import orjson
import pytest

from pushhub import faults, idempotency
from pushhub.auth import Access, JWTVerifier
from pushhub.backends.base import LEGACY_SCOPE, Recorded

SECRET = "s" * 32


def test_a_record_replays_the_answer_it_was_made_for() -> None:
    fingerprint = idempotency.fingerprint("orders", b'{"type":"t"}')
    value = idempotency.record(fingerprint, ["evt_a", "evt_b"], True)
    described, batch = idempotency.replay("orders", Recorded(value, "ep0ch", 41), fingerprint, "k")
    assert batch and [(e["id"], e["offset"], e["cursor"]) for e in described] == [
        ("evt_a", 41, "ep0ch.41"), ("evt_b", 42, "ep0ch.42")]
    assert idempotency.answer(described, batch) == orjson.dumps({"events": described})
    with pytest.raises(idempotency.KeyReused):
        idempotency.replay("orders", Recorded(value, "ep0ch", 41), idempotency.fingerprint("orders", b"{}"), "k")


def test_records_of_the_unscoped_dedupe_store_convert() -> None:
    answer = {"id": "evt_1", "channel": "pay", "epoch": "ep0ch", "offset": 3, "cursor": "ep0ch.3"}
    old = orjson.dumps({"fingerprint": "f", "answer": orjson.dumps(answer).decode()})
    channel, scope, key, recorded = idempotency.from_legacy("publish:k-1", old) or ("", "", "", None)
    assert (channel, scope, key) == ("pay", LEGACY_SCOPE, "k-1") and recorded is not None
    assert idempotency.replay(channel, recorded, "f", key) == ([answer], False)
    converted = idempotency.from_legacy("ingest:gh:d:1", orjson.dumps(answer))
    assert converted is not None and converted[1:3] == (idempotency.ingest_scope("gh"), "d:1")
    assert idempotency.from_legacy("something:else", b"{}") is None


def test_each_credential_publishes_as_itself() -> None:
    access = Access(publisher_keys=["key-a", "key-b"], jwt_verifier=JWTVerifier([SECRET], []))
    identities = {access.grant("key-a").publisher, access.grant("key-b").publisher}
    assert len(identities) == 2 and all(i.startswith("key:") and "key-a" not in i for i in identities)
    token = jwt.encode({"sub": "alice", "exp": time.time() + 60, "pushhub": {"publish": ["*"]}}, SECRET)
    assert access.grant(token).publisher == "token:alice"
    assert Access().grant(None).publisher == ""  # an open hub: one shared scope


def test_the_fault_point_is_off_unless_set() -> None:
    assert faults.after_append({}) is faults.nothing
    assert faults.after_append({faults.VARIABLE: "something"}) is faults.nothing
    assert faults.after_append({faults.VARIABLE: faults.KILL_AFTER_APPEND + "3"}) is not faults.nothing
