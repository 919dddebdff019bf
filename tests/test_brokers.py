"""One test suite for every Broker, made through the one seam (create_backend): memory, SQLite,
Redis and Redis Cluster. The log, live fan-out and the idempotency records committed with appends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from pushhub.backends import Backend, create_backend, redis_keys
from pushhub.backends.base import LEGACY_SCOPE, Broker, Once
from pushhub.events import Event, EventDraft
from pushhub.provenance import API, INGEST, Origin
from pushhub.retention import Retention, RetentionPolicy

from .redis_servers import RedisClusterServers, RedisServer
from .utils import TIMEOUT

POLICY = RetentionPolicy(["short.*=3/1h"], Retention(100, 3600.0))


def draft(n: int) -> EventDraft:
    return EventDraft(f"evt_{n}", "t", "2026-01-01T00:00:00.000Z", n, {})


@dataclass
class Opened:
    backend: Backend
    live: asyncio.Queue[Event]

    @property
    def broker(self) -> Broker:
        return self.backend.broker


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
async def opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    if request.param == "memory":
        url, cluster = "memory://", False
    elif request.param == "sqlite":
        url, cluster = "sqlite://" + str(tmp_path / "pushhub.db"), False
    elif request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url, cluster = server.fresh_url(), False
    else:
        servers: RedisClusterServers = request.getfixturevalue("redis_cluster")
        servers.flush()
        url, cluster = servers.url, True
    backend = create_backend(url, POLICY, cluster=cluster)
    live: asyncio.Queue[Event] = asyncio.Queue()
    await backend.open()
    await backend.broker.start(lambda channel, events: [live.put_nowait(e) for e in events])
    yield Opened(backend, live)
    await backend.broker.close()
    await backend.close()


async def test_offsets_history_and_state(opened: Opened) -> None:
    broker = opened.broker
    first = (await broker.publish("c", [draft(1), draft(2)])).events
    second = (await broker.publish("c", [draft(3)])).events
    assert [e.offset for e in first + second] == [1, 2, 3] and len({e.epoch for e in first + second}) == 1
    page = await broker.history("c", 1, 1)
    assert [e.data for e in page.events] == [2] and page.state == (first[0].epoch, 3, 1)
    assert (await broker.state("empty")).top == 0


async def test_count_retention(opened: Opened) -> None:
    await opened.broker.publish("short.x", [draft(n) for n in range(5)])
    page = await opened.broker.history("short.x", 0, 10)
    assert [e.offset for e in page.events] == [3, 4, 5] and page.state.earliest == 3


async def test_live_events_of_subscribed_channels(opened: Opened) -> None:
    await opened.broker.subscribe("l")
    await opened.broker.publish("l", [draft(1)])
    event = await asyncio.wait_for(opened.live.get(), TIMEOUT)
    assert (event.channel, event.offset, event.data) == ("l", 1, 1)


async def test_a_record_is_stored_with_its_append_and_replayed(opened: Opened) -> None:
    broker = opened.broker
    await broker.subscribe("i")
    once = Once("key:a", "k-1", b"the record", 3600.0)
    (event,) = (await broker.publish("i", [draft(1)], once)).events
    assert (await asyncio.wait_for(opened.live.get(), TIMEOUT)).offset == 1
    again = await broker.publish("i", [draft(2)], once)
    assert again.events == [] and again.replayed == (b"the record", event.epoch, 1)
    # Another publisher's key of the same name, and the same key on another channel, are other requests.
    assert (await broker.publish("i", [draft(3)], Once("key:b", "k-1", b"b's", 3600.0))).events[0].offset == 2
    assert (await broker.publish("j", [draft(4)], once)).events[0].offset == 1
    assert [e.data for e in (await broker.history("i", 0, 10)).events] == [1, 3]
    assert (await asyncio.wait_for(opened.live.get(), TIMEOUT)).data == 3  # the replay was not sent live


async def test_a_record_of_the_legacy_scope_matches_every_publisher(opened: Opened) -> None:
    broker = opened.broker
    await broker.publish("g", [draft(1), draft(2)], Once(LEGACY_SCOPE, "old", b"migrated", 3600.0))
    replayed = (await broker.publish("g", [draft(3)], Once("key:a", "old", b"new", 3600.0))).replayed
    assert replayed is not None and (replayed.value, replayed.first) == (b"migrated", 1)
    assert (await broker.state("g")).top == 2


async def test_concurrent_requests_with_one_key_append_once(opened: Opened) -> None:
    once = Once("", "same", b"first", 3600.0)
    results = await asyncio.gather(*(opened.broker.publish("r", [draft(n)], once) for n in range(8)))
    assert sum(1 for r in results if r.events) == 1
    assert {r.replayed.first for r in results if r.replayed is not None} == {1}
    assert len((await opened.broker.history("r", 0, 10)).events) == 1


def test_a_channels_records_share_its_cluster_slot() -> None:
    names = [redis_keys.meta_key("a.b:c"), redis_keys.log_key("a.b:c"), redis_keys.once_key("a.b:c", "key:x", "k{1}"),
             redis_keys.once_key("a.b:c", LEGACY_SCOPE, "k")]
    assert len({key_slot(name.encode()) for name in names}) == 1
    assert redis_keys.once_key("c", "a:b", "c") != redis_keys.once_key("c", "a", "b:c")


async def test_redis_records_expire_after_their_window(redis_server: RedisServer) -> None:
    url = redis_server.fresh_url()
    backend = create_backend(url, POLICY)
    await backend.open()
    await backend.broker.start(lambda channel, events: None)
    client = Redis.from_url(url)
    try:
        await backend.broker.publish("w", [draft(1)], Once("", "k", b"v", 60.0))
        left = await client.pttl(redis_keys.once_key("w", "", "k"))
        assert 0 < left <= 60_000
    finally:
        await client.aclose()
        await backend.broker.close()
        await backend.close()


ORIGIN = Origin(API, "key:abc")


def typed(n: int, event_type: str) -> EventDraft:
    return EventDraft(f"evt_{n}", event_type, "2026-01-01T00:00:%02d.000Z" % n, n, {})


async def test_events_are_found_by_id_with_their_origin_and_repeats(opened: Opened) -> None:
    broker = opened.broker
    ingested = Origin(INGEST, "github", "github", "d-1")
    once = Once("ingest:github", "d-1", b"r", 3600.0)
    (event,) = (await broker.publish("f", [draft(1)], once, ingested)).events
    await broker.publish("f", [draft(2)], None, ORIGIN)
    assert (await broker.publish("f", [draft(9)], once, ingested)).replayed is not None
    assert (await broker.publish("f", [draft(9)], once, ingested)).replayed is not None
    (found,) = await broker.find("evt_1", 10)
    assert (found.event.channel, found.event.epoch, found.event.offset, found.event.data) == ("f", event.epoch, 1, 1)
    assert found.origin == ingested and found.repeats == 2
    (other,) = await broker.find("evt_2", 10)
    assert other.origin == ORIGIN and other.repeats == 0
    assert await broker.find("evt_9", 10) == []  # the repeats appended nothing
    await broker.publish("g", [draft(1)])
    assert sorted((f.event.channel, f.origin) for f in await broker.find("evt_1", 10)) == [
        ("f", ingested), ("g", None)]


async def test_events_are_found_by_type_newest_first(opened: Opened) -> None:
    broker = opened.broker
    await broker.publish("a", [typed(1, "order.created"), typed(2, "order.paid")], None, ORIGIN)
    await broker.publish("b", [typed(3, "order.created")], None, ORIGIN)
    found = await broker.find_type("order.created", 10)
    assert [(f.event.channel, f.event.data) for f in found] == [("b", 3), ("a", 1)]
    assert [f.event.data for f in await broker.find_type("order.created", 1)] == [3]
    assert await broker.find_type("order.none", 10) == []


async def test_the_index_is_trimmed_with_the_log(opened: Opened) -> None:
    broker = opened.broker
    await broker.publish("short.t", [typed(n, "t") for n in range(1, 6)], None, ORIGIN)
    assert await broker.find("evt_1", 10) == [] and [f.event.offset for f in await broker.find("evt_5", 10)] == [5]
    assert [f.event.data for f in await broker.find_type("t", 10)] == [5, 4, 3]


async def test_channels_are_listed_by_pattern_in_pages(opened: Opened) -> None:
    broker = opened.broker
    for name in ["orders.1", "orders.2", "orders.3", "audit"]:
        await broker.publish(name, [draft(1)])
    first = await broker.channels("orders.*", "", 2)
    assert first == (["orders.1", "orders.2"], "orders.2")
    assert await broker.channels("orders.*", "orders.2", 2) == (["orders.3"], None)
    assert (await broker.channels("*", "", 10)).names == ["audit", "orders.1", "orders.2", "orders.3"]
    assert (await broker.channels("*dit", "", 10)).names == ["audit"]


async def test_recent_counts_what_was_appended_since(opened: Opened) -> None:
    broker = opened.broker
    await broker.publish("r", [draft(1), draft(2)])
    assert await broker.recent("r", time.time() - 60) == 2
    assert await broker.recent("r", time.time() + 60) == 0
    assert await broker.recent("nothing", 0) == 0
