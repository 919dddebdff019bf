"""The transport's pure parts on plain values: which address a request comes from behind proxies,
the framing of a live batch per group kind, the server's own error responses, and how the outbox
orders what one turn of the event loop writes."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import orjson
import pytest

from pushhub import disconnect, protocol, sse
from pushhub.backends.base import Published
from pushhub.backends.embedded import EmbeddedBroker, MemoryStore
from pushhub.connection import Connection, Outbox, SSEConnection, SSEGroup, Subscription, WSGroup, render_batch
from pushhub.cursor import Position
from pushhub.errors import BadRequest
from pushhub.events import Event, EventDraft
from pushhub.forwarded import Proxies
from pushhub.http11 import error_response
from pushhub.hub import Hub
from pushhub.retention import RetentionPolicy
from pushhub.streams import parse_query
from pushhub.websocket import wire_size
from tests.ws_raw import client_frame


class RecordingTransport:
    """The part of a stream transport a connection uses, recording each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


def test_no_proxy_is_trusted_by_default() -> None:
    proxies = Proxies()
    assert not proxies
    assert proxies.client("127.0.0.1", ["10.9.9.9"]) == "127.0.0.1"


def test_the_client_is_the_rightmost_untrusted_hop() -> None:
    proxies = Proxies(["127.0.0.1", "10.0.0.0/8"])
    assert proxies.client("127.0.0.1", ["203.0.113.7"]) == "203.0.113.7"
    assert proxies.client("127.0.0.1", ["198.51.100.1, 203.0.113.7, 10.1.2.3"]) == "203.0.113.7"
    assert proxies.client("127.0.0.1", ["198.51.100.1", "10.1.2.3"]) == "198.51.100.1"
    assert proxies.client("192.0.2.1", ["203.0.113.7"]) == "192.0.2.1"  # not from a proxy: not believed
    assert proxies.client("127.0.0.1", ["10.1.2.3"]) == "10.1.2.3"  # every hop a proxy: the first one
    assert Proxies(["*"]).client("192.0.2.1", ["203.0.113.7"]) == "203.0.113.7"


def test_a_bad_proxy_address_is_a_clear_error() -> None:
    with pytest.raises(BadRequest, match="forwarded-allow-ips"):
        Proxies(["10.0.0.0/33"])


def events(channel: str, epoch: str, offsets: range) -> list[Event]:
    return [Event(channel, epoch, n, EventDraft(f"evt_{n}", "t", "2026-01-01T00:00:00.000Z", n, {}))
            for n in offsets]


def test_a_ws_batch_is_the_frames_of_its_events() -> None:
    batch = events("a", "ep", range(1, 3))
    assert render_batch(WSGroup(binary=False), batch, {}) == b"".join(
        protocol.ws_frame(protocol.event_json(e, f"ep.{e.offset}"), binary=False) for e in batch)


def test_an_sse_batch_carries_cursors_over_every_channel_and_leaves_the_tops_alone() -> None:
    tops = {"a": Position("ep", 0), "b": Position("eb", 7)}
    before = dict(tops)
    data = render_batch(SSEGroup(("a", "b"), chunked=False), events("a", "ep", range(1, 3)), tops)
    messages = sse.Parser().feed(data.decode())
    assert [m.id for m in messages] == ["a@ep.1,b@eb.7", "a@ep.2,b@eb.7"]
    assert [orjson.loads(m.data)["offset"] for m in messages] == [1, 2]
    assert tops == before
    single = render_batch(SSEGroup(("a",), chunked=False), events("a", "ep", range(1, 2)), tops)
    assert single.startswith(b"id: ep.1\n")
    assert render_batch(SSEGroup(("a",), chunked=True), events("a", "ep", range(1, 2)), tops) == sse.chunk(single)


def test_group_kinds_are_values() -> None:
    assert WSGroup(True) == WSGroup(True) and hash(SSEGroup(("a",), True)) == hash(SSEGroup(("a",), True))
    assert WSGroup(True) != WSGroup(False)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_wire_size_of_a_client_frame(size: int) -> None:
    assert wire_size(size) == len(client_frame(b"x" * size))


def test_error_responses_close_the_connection() -> None:
    response = error_response(431, "headers_too_large", "too big")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close" in head and b"content-length: %d" % len(body) in head
    assert orjson.loads(body) == {"error": {"code": "headers_too_large", "message": "too big"}}


@pytest.mark.parametrize("query", [
    b"", b"channel=a", b"channel=a,b&type=x.*&channel=c", b"a=1&&b=&c", b"k%20ey=v%2Cw+x", b"=v&x==y",
    b"token=a%2Bb&cursor=k3j9x2ab.16", "caf\u00e9=%C3%A9%ZZ".encode("latin-1"),
])
def test_a_query_is_read_as_parse_qsl_reads_it(query: bytes) -> None:
    expected: dict[str, list[str]] = {}
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        expected.setdefault(name, []).append(value)
    assert parse_query({"query_string": query}) == expected


async def test_the_outbox_writes_each_connection_once_a_turn_in_the_order_written() -> None:
    outbox = Outbox()
    transports = [RecordingTransport() for _ in range(3)]
    a, b, c = (Connection(t, 1 << 20, outbox) for t in transports)
    c.mark_closed(disconnect.CLIENT_GONE)
    a.write(b"own-1 ")
    outbox.write_all({a: None, b: None, c: None}, b"group ")
    b.write(b"own-2")
    outbox.write_all([a, b], b"again")
    assert [t.writes for t in transports] == [[], [], []]  # nothing before the end of the turn
    turn_over = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(turn_over.set_result, None)  # runs after the flush queued first
    await turn_over
    assert [t.writes for t in transports] == [[b"own-1 group again"], [b"group own-2again"], []]


async def test_a_held_outbox_writes_at_its_holders_flush_and_takes_no_turn_of_its_own() -> None:
    outbox = Outbox()
    transport = RecordingTransport()
    conn = Connection(transport, 1 << 20, outbox)
    assert outbox.hold()
    conn.write(b"one ")
    outbox.write_all([conn], b"two")
    assert transport.writes == [] and outbox.scheduled
    outbox.flush()
    assert transport.writes == [b"one two"] and not outbox.scheduled
    conn.write(b"due")
    assert not outbox.hold()  # a flush is due this turn already: it writes what comes meanwhile too
    turn_over = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(turn_over.set_result, None)
    await turn_over
    assert transport.writes == [b"one two", b"due"]


async def test_a_group_commits_events_are_written_in_the_turn_that_committed_them() -> None:
    hub = Hub(EmbeddedBroker(MemoryStore(RetentionPolicy())))
    await hub.start()
    try:
        transports = {channel: RecordingTransport() for channel in ("a", "b")}
        for channel, transport in transports.items():
            conn = SSEConnection(transport, 1 << 20, hub.outbox, chunked=False)
            hub.add_connection(conn)
            await hub.subscribe(Subscription(conn, (channel,), (), None), None)
        loop = asyncio.get_running_loop()
        answers: list[Published | BaseException] = []
        for channel in transports:  # two publishes of one turn: one group commit
            hub.publish_soon(channel, [EventDraft(f"id-{channel}", "message", "2026-12-02T05:00:00.000Z", {}, None)],
                             None, None, answers.append)
        after_commit = loop.create_future()
        loop.call_soon(lambda: after_commit.set_result([list(t.writes) for t in transports.values()]))
        written = await after_commit
        events = [answer.events[0] for answer in answers if isinstance(answer, Published)]
        assert written == [[sse.event_frame(e.position.encode(), e.json)] for e in events] and len(events) == 2
    finally:
        await hub.broker.close()


async def test_a_streams_head_waits_for_its_first_flush_with_what_follows_in_one_write() -> None:
    outbox = Outbox()
    transport = RecordingTransport()
    conn = Connection(transport, 1 << 20, outbox, b"head ")
    conn.write(b"reply")
    assert not outbox.scheduled and not outbox.dirty  # the outbox has nothing to do for it
    conn.flush()
    conn.write(b" later")
    assert transport.writes == [b"head reply"]
    turn_over = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(turn_over.set_result, None)
    await turn_over
    assert transport.writes == [b"head reply", b" later"]


@pytest.mark.parametrize("msg_id", [None, 7, "a-1"])
@pytest.mark.parametrize("subprotocol", [protocol.JSON, protocol.MSGPACK])
def test_the_subscribed_reply_is_the_encoding_of_its_message(subprotocol: str, msg_id: int | str | None) -> None:
    encoder = protocol.ENCODERS[subprotocol]
    for channel, cursor in (("orders", "k3j9x2ab.41"), ("a-b_c.d:e", "zz.0"), ("x", "orders@k3j9x2ab.1,y@k.2")):
        assert encoder.subscribed(msg_id, channel, cursor) == encoder.message(
            {"op": "subscribed", "id": msg_id, "channel": channel, "cursor": cursor})
