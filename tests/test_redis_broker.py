"""The Redis broker on its own: key layout, wire format, retention and epochs against a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.crc import key_slot

from pushhub.backends import redis_keys
from pushhub.backends.base import OnBatch, OnEvents
from pushhub.backends.redis import RedisBroker
from pushhub.backends.redis_connection import RedisConnection
from pushhub.backends.redis_wire import decode_live
from pushhub.errors import Unavailable
from pushhub.events import Event, EventDraft
from pushhub.retention import Retention, RetentionPolicy

from .redis_servers import RedisClusterServers, RedisServer, running
from .utils import TIMEOUT, free_port


class OwnConnection(RedisBroker):
    """A broker that opens and closes its connection itself, as its backend would around it."""

    async def start(self, on_events: OnEvents, on_batch: OnBatch | None = None) -> None:
        await self.connection.open()
        await super().start(on_events, on_batch)

    async def close(self) -> None:
        await super().close()
        await self.connection.close()


def redis_broker(url: str, retention: RetentionPolicy, *, cluster: bool = False, **options: Any) -> RedisBroker:
    return OwnConnection(RedisConnection(url, cluster=cluster), retention, **options)


def draft(data: object) -> EventDraft:
    return EventDraft(f"evt_{data}", "t", "2026-01-01T00:00:00.000Z", data, {})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def broker(redis_server: RedisServer) -> AsyncIterator[tuple[RedisBroker, Clock]]:
    clock = Clock()
    broker = redis_broker(redis_server.fresh_url(), RetentionPolicy([], Retention(3, 60.0)), clock=clock)
    await broker.start(lambda channel, events: None)
    yield broker, clock
    await broker.close()


def test_keys_of_a_channel_share_one_cluster_slot() -> None:
    slots = {key_slot(name.encode()) for name in (redis_keys.meta_key("a.b:c"), redis_keys.log_key("a.b:c"))}
    slots.add(key_slot(redis_keys.live_channel(7, "a.b:c")))
    assert len(slots) == 1
    assert redis_keys.channel_of(redis_keys.live_channel(7, "a.b:c")) == "a.b:c"


def test_live_message_round_trip() -> None:
    drafts = [draft({"n": 1}), draft("two\nlines")]
    payload = b"\n".join([b"ep0ch", b"41", *(d.stored() for d in drafts)])  # as the publish script builds it
    events = decode_live("orders", payload)
    assert [(e.channel, e.epoch, e.offset, e.data) for e in events] == [
        ("orders", "ep0ch", 41, {"n": 1}), ("orders", "ep0ch", 42, "two\nlines")]


async def test_count_and_age_retention(broker: tuple[RedisBroker, Clock]) -> None:
    redis, clock = broker
    await redis.publish("r", [draft(i) for i in range(5)])
    page = await redis.history("r", 0, 10)
    assert [e.data for e in page.events] == [2, 3, 4]
    assert (page.state.top, page.state.earliest) == (5, 3)
    clock.now += 50
    await redis.publish("r", [draft(5)])
    clock.now += 20  # events 3 and 4 are now 70 s old, event 5 is 20 s old
    page = await redis.history("r", 0, 10)
    assert [(e.offset, e.data) for e in page.events] == [(6, 5)]
    assert (page.state.top, page.state.earliest) == (6, 6)


async def test_epoch_is_stable_until_redis_loses_the_channel(broker: tuple[RedisBroker, Clock],
                                                             redis_server: RedisServer) -> None:
    redis, _ = broker
    before = await redis.state("e")
    assert before.top == 0 and before.earliest == 1
    [event] = (await redis.publish("e", [draft(1)])).events
    assert isinstance(event, Event) and (event.epoch, event.offset) == (before.epoch, 1)
    await redis.client.flushdb()
    after = await redis.state("e")
    assert after.epoch != before.epoch and after.top == 0
    [event] = (await redis.publish("e", [draft(2)])).events
    assert (event.epoch, event.offset) == (after.epoch, 1)


async def test_the_publishes_of_one_loop_turn_share_one_connection(broker: tuple[RedisBroker, Clock]) -> None:
    redis, _ = broker
    await redis.publish("p", [draft(0)])
    before = (await redis.client.info("clients"))["connected_clients"]
    published = await asyncio.gather(*(redis.publish("p", [draft(n), draft(-n)]) for n in range(1, 21)))
    assert [[(e.offset, e.data) for e in p.events] for p in published] == [
        [(2 * n, n), (2 * n + 1, -n)] for n in range(1, 21)]  # in the order they were made, each its own
    assert (await redis.client.info("clients"))["connected_clients"] == before  # one pipeline, not 20 commands


async def test_publishes_load_the_script_again_once_redis_forgot_it(broker: tuple[RedisBroker, Clock]) -> None:
    redis, _ = broker
    await redis.publish("s", [draft(0)])
    await redis.client.script_flush()
    published = await asyncio.gather(*(redis.publish("s", [draft(n)]) for n in range(1, 4)))
    assert [[e.offset for e in p.events] for p in published] == [[2], [3], [4]]
    assert [e.data for e in (await redis.history("s", 0, 10)).events] == [1, 2, 3]  # (the fixture keeps 3)


async def test_unreachable_redis_raises_unavailable() -> None:
    broker = redis_broker(f"redis://127.0.0.1:{free_port()}/0", RetentionPolicy())
    await broker.start(lambda channel, events: None)
    try:
        with pytest.raises(Unavailable):
            await broker.publish("x", [draft(1)])
        with pytest.raises(Unavailable):
            await broker.history("x", 0, 10)
        with pytest.raises(Unavailable):
            await broker.subscribe("x")
        assert not await broker.healthy()
    finally:
        await broker.close()


class Blackhole:
    """A TCP proxy to Redis that can start swallowing the traffic of the pub/sub connections it
    carries, keeping them open: what a dead network path or a dropped NAT entry looks like."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.swallowing = False
        self.server: asyncio.Server | None = None
        self.pubsub_connections = 0
        self.handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.port)
        pubsub = False
        opened_swallowing = self.swallowing

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, outgoing: bool) -> None:
            nonlocal pubsub
            while data := await source.read(65536):
                if outgoing and not pubsub and b"SUBSCRIBE" in data:
                    pubsub = True
                    self.pubsub_connections += 1
                if not (pubsub and self.swallowing and not opened_swallowing):
                    sink.write(data)

        try:
            with contextlib.suppress(OSError):
                await asyncio.gather(pipe(reader, upstream_writer, True), pipe(upstream_reader, writer, False))
        finally:
            for end in (writer, upstream_writer):
                end.close()
                with contextlib.suppress(OSError):
                    await end.wait_closed()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()


async def test_silent_pubsub_connection_is_replaced_and_the_gap_filled(redis_server: RedisServer) -> None:
    """Nothing arrives on a connection that went silent: the PING health check notices, reconnects,
    and the channel is recovered from its stream."""
    url = redis_server.fresh_url()
    proxy = Blackhole(redis_server.port)
    proxy_port = await proxy.start()
    received: asyncio.Queue[Event] = asyncio.Queue()
    listener = redis_broker(url.replace(f":{redis_server.port}/", f":{proxy_port}/"), RetentionPolicy(),
                            health_interval=TIMEOUT / 100)
    publisher = redis_broker(url, RetentionPolicy())
    await listener.start(lambda channel, events: [received.put_nowait(e) for e in events])
    await publisher.start(lambda channel, events: None)
    try:
        await listener.subscribe("quiet")
        await publisher.publish("quiet", [draft(1)])
        assert (await asyncio.wait_for(received.get(), TIMEOUT)).data == 1
        proxy.swallowing = True
        await publisher.publish("quiet", [draft(2)])
        assert (await asyncio.wait_for(received.get(), TIMEOUT)).data == 2
        assert proxy.pubsub_connections == 2  # the silent one was replaced
    finally:
        await listener.close()
        await publisher.close()
        await proxy.close()


async def test_follows_a_channel_whose_slot_moves_to_another_shard(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    cluster = RedisClusterServers(str(tmp_path_factory.mktemp("moving-cluster")))
    with running(cluster):
        channel = next(f"m{n}" for n in itertools.count() if key_slot(redis_keys.live_channel(0, f"m{n}")) == 0)
        received: asyncio.Queue[Event] = asyncio.Queue()
        late: asyncio.Queue[Event] = asyncio.Queue()
        listener = redis_broker(cluster.url, RetentionPolicy(), cluster=True)
        late_listener = redis_broker(cluster.url, RetentionPolicy(), cluster=True)  # a stale slot map
        publisher = redis_broker(cluster.url, RetentionPolicy(), cluster=True)
        await listener.start(lambda channel, events: [received.put_nowait(e) for e in events])
        await late_listener.start(lambda channel, events: [late.put_nowait(e) for e in events])
        await publisher.start(lambda channel, events: None)
        try:
            await listener.subscribe(channel)
            await publisher.publish(channel, [draft(1)])
            assert (await asyncio.wait_for(received.get(), TIMEOUT)).data == 1
            source, target = (node.cli("cluster", "myid") for node in cluster.nodes[:2])
            command = ["redis-cli", "--cluster", "reshard", f"127.0.0.1:{cluster.nodes[0].port}", "--cluster-from",
                       source, "--cluster-to", target, "--cluster-slots", "1", "--cluster-yes"]
            await asyncio.to_thread(subprocess.run, command, capture_output=True, check=True, timeout=8 * TIMEOUT)
            assert cluster.nodes[1].cli("cluster", "countkeysinslot", "0") == "3"  # slot 0 moved: meta, log, ids
            await publisher.publish(channel, [draft(2)])
            event = await asyncio.wait_for(received.get(), TIMEOUT)
            while event.offset == 1:  # following the moved slot hands the hub the newest event again
                event = await asyncio.wait_for(received.get(), TIMEOUT)
            assert (event.offset, event.data) == (2, 2)
            await late_listener.subscribe(channel)  # refused (MOVED) by the old owner, then followed
            await publisher.publish(channel, [draft(3)])
            assert (await asyncio.wait_for(late.get(), TIMEOUT)).offset == 3
        finally:
            await late_listener.close()
            await listener.close()
            await publisher.close()


async def test_cluster_link_resubscribes_channels_of_several_slots(redis_cluster: RedisClusterServers) -> None:
    """After its pub/sub connection is killed, a shard's link subscribes again to every channel it
    carried, although they hash to different slots (one SSUBSCRIBE per channel)."""
    first = redis_cluster.nodes[0]
    names = [f"r{n}" for n in range(200) if key_slot(redis_keys.live_channel(0, f"r{n}")) <= 5460][:3]
    received: asyncio.Queue[Event] = asyncio.Queue()
    listener = redis_broker(redis_cluster.url, RetentionPolicy(), cluster=True)
    publisher = redis_broker(redis_cluster.url, RetentionPolicy(), cluster=True)
    await listener.start(lambda channel, events: [received.put_nowait(e) for e in events])
    await publisher.start(lambda channel, events: None)
    try:
        for name in names:
            await listener.subscribe(name)
        await asyncio.to_thread(first.cli, "client", "kill", "type", "pubsub")
        for name in names:
            await publisher.publish(name, [draft(name)])
        got = {(await asyncio.wait_for(received.get(), TIMEOUT)).data for _ in names}
        assert got == set(names)
        shard_channels = (await asyncio.to_thread(first.cli, "pubsub", "shardchannels")).splitlines()
        assert set(shard_channels) >= {redis_keys.live_channel(0, name).decode() for name in names}
    finally:
        await listener.close()
        await publisher.close()
