"""Hypothesis-generated WebSocket messages, inside valid frames, against a real hub process: each
one is answered (an ``error`` message when it is malformed) and the connection stays open, on the
JSON and the msgpack subprotocols. Hostile SSE query strings get a 4xx or a stream, never a 5xx."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from .fuzz_utils import json_values
from .utils import TIMEOUT, HubProcess

PUBLISHER = "publisher-key-for-ws-fuzzing"

ids = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=10), st.floats(allow_nan=False),
                st.lists(st.integers(-5, 5), max_size=2), st.booleans())
texts = st.one_of(st.sampled_from(["orders", "public:x", "", "a" * 300, "bad name", "x@y", "*", "k3j9x2ab.16",
                                   "zzzz.999999", "9999-12-31T23:59:59-23:59", "payment.*"]), st.text(max_size=20))
events = st.one_of(json_values, st.fixed_dictionaries({}, optional={
    "type": texts, "time": texts, "id": st.one_of(texts, ids), "data": json_values, "meta": json_values}))
messages = st.fixed_dictionaries({"op": st.one_of(st.sampled_from(["subscribe", "unsubscribe", "publish", "ping"]),
                                                  st.text(max_size=10), json_values)},
                                 optional={"id": ids, "channel": st.one_of(texts, json_values),
                                           "cursor": st.one_of(texts, json_values),
                                           "types": st.one_of(st.lists(texts, max_size=3), json_values),
                                           "event": events, "extra": json_values})
# Values msgpack has and JSON has not: bytes, extension types, non-string keys.
packed_extras = st.one_of(st.binary(max_size=20), st.builds(msgpack.ExtType, st.integers(0, 127),
                                                            st.binary(max_size=8)),
                          st.dictionaries(st.integers(-5, 5), st.integers(-(2**63), 2**63 - 1), max_size=2))
# A message with one of them as its event's data, or as the value of any of its fields.
with_extras = st.one_of(
    messages.flatmap(lambda m: packed_extras.map(lambda extra: {**m, "event": {"type": "t", "data": extra}})),
    messages.flatmap(lambda m: st.tuples(st.sampled_from(["op", "id", "channel", "cursor", "types", "event"]),
                                         packed_extras).map(lambda pair: {**m, pair[0]: pair[1]})))


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    tmp: Path = tmp_path_factory.mktemp("ws-fuzz")
    process = HubProcess(["--data-dir", str(tmp / "data"), "--publisher-key", PUBLISHER, "--public-channel", "*"],
                         log_path=str(tmp / "hub.log")).start()
    yield process
    process.stop()


@contextlib.contextmanager
def socket(hub: HubProcess, subprotocol: str) -> Iterator[ClientConnection]:
    with connect(hub.ws_url, subprotocols=[subprotocol],  # type: ignore[list-item]
                 additional_headers={"authorization": f"Bearer {PUBLISHER}"}, open_timeout=TIMEOUT) as ws:
        yield ws


def still_answers(ws: ClientConnection, binary: bool) -> list[dict[str, Any]]:
    """Everything the hub sent until it answered a ping after the fuzzed message: the connection
    must still be open, and every message a well-formed object with an ``op``."""
    probe = {"op": "ping", "id": "probe-after-fuzz"}
    ws.send(msgpack.packb(probe) if binary else orjson.dumps(probe).decode())
    received = []
    while True:
        raw = ws.recv(timeout=TIMEOUT)
        message = msgpack.unpackb(raw, strict_map_key=False) if binary else orjson.loads(raw)
        assert isinstance(message, dict) and isinstance(message.get("op"), str), message
        if message == {"op": "pong", "id": "probe-after-fuzz"}:
            return received
        received.append(message)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(message=st.one_of(messages.map(lambda m: orjson.dumps(m).decode()), st.text(max_size=60),
                         json_values.map(lambda v: orjson.dumps(v).decode())))
@example('{"op":"subscribe","channel":"a","types":[{}]}')
@example('{"op":"publish","channel":"a","event":{"type":"t","time":"9999-12-31T23:59:59-23:59"}}')
def test_json_messages_answered_and_connection_kept(hub: HubProcess, message: str) -> None:
    with socket(hub, "pushhub.json") as ws:
        ws.send(message)
        replies = still_answers(ws, binary=False)
    assert all(r["op"] != "error" or (r["code"] and r["message"]) for r in replies), replies


@FUZZ
@given(message=st.one_of(messages, with_extras).map(msgpack.packb) | st.binary(max_size=60))
@example(msgpack.packb({"op": "publish", "channel": "a", "event": {"type": "t", "data": b"\x00"}}))
@example(msgpack.packb({"op": "publish", "channel": "a", "event": {"type": "t", "data": msgpack.ExtType(1, b"")}}))
@example(msgpack.packb({"op": "subscribe", "channel": "a", "types": [[1]]}))
def test_msgpack_messages_answered_and_connection_kept(hub: HubProcess, message: bytes) -> None:
    with socket(hub, "pushhub.msgpack") as ws:
        ws.send(message)
        replies = still_answers(ws, binary=True)
    assert all(r["op"] != "error" or (r["code"] and r["message"]) for r in replies), replies


@pytest.mark.parametrize(("data", "answered"), [(b"\x00", 7), (msgpack.ExtType(1, b"x"), 7), ({1: 2}, None)],
                         ids=["bin", "ext", "int-key"])  # a map with an integer key is not decoded at all
def test_msgpack_values_json_lacks_get_an_error_message(hub: HubProcess, data: Any, answered: int | None) -> None:
    with socket(hub, "pushhub.msgpack") as ws:
        ws.send(msgpack.packb({"op": "publish", "id": 7, "channel": "orders", "event": {"type": "t", "data": data}}))
        replies = still_answers(ws, binary=True)
    assert [(r["op"], r["id"]) for r in replies] == [("error", answered)], replies
    assert replies[0]["code"] and replies[0]["message"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.lists(st.tuples(st.sampled_from(["channel", "type", "lastEventId", "token", "key"]), texts),
                      max_size=5),
       last_event_id=st.one_of(st.none(), texts.filter(  # h11 refuses to send a value with surrounding blanks
           lambda t: t.isascii() and t.isprintable() and t == t.strip())))
def test_sse_query_never_5xx(hub: HubProcess, query: list[tuple[str, str]], last_event_id: str | None) -> None:
    headers = {} if last_event_id is None else {"last-event-id": last_event_id}
    with httpx.Client(base_url=hub.url, timeout=TIMEOUT) as client, \
            client.stream("GET", "/v1/sse", params=query, headers=headers) as response:
        assert response.status_code < 500
        if response.status_code != 200:
            assert orjson.loads(response.read())["error"]["message"]
