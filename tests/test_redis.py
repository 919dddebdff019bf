"""Scale-out through Redis: several hub processes, Redis failures, Redis Cluster."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from pushhub.backends import redis_keys

from .redis_servers import RedisClusterServers, RedisServer, running
from .test_nginx_restart import until
from .utils import POLL, QUIET, TIMEOUT, HubProcess, SSEStream, publish, sse_stream

HubFactory = Callable[..., HubProcess]


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this test alone, free to be killed, restarted or flushed."""
    server = RedisServer(str(tmp_path_factory.mktemp("own-redis")))
    with running(server):
        yield server


@pytest.fixture
async def own_client(own_redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(own_redis.url)
    yield client
    await client.aclose()


async def publish_when_up(client: httpx.AsyncClient, channel: str, data: Any) -> dict[str, Any]:
    """Publish, retrying while the hub answers 503 (Redis is coming back)."""
    deadline = time.monotonic() + 4 * TIMEOUT
    while True:
        response = await client.post(f"/v1/channels/{channel}/events", json={"type": "t", "data": data})
        if response.status_code == 202 or time.monotonic() > deadline:
            assert response.status_code == 202, response.text
            return dict(response.json())
        assert response.status_code == 503, response.text
        await asyncio.sleep(POLL)


async def pubsub_connected(client: aioredis.Redis) -> bool:
    return bool(await client.client_list(_type="pubsub"))


async def script_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


async def read_until_end(stream: SSEStream) -> list[dict[str, Any]]:
    """Every data event until the stream ends (control events are kept too)."""
    seen = []
    while True:
        try:
            seen.extend(await stream.events(1))
        except EOFError:
            return seen


async def test_publish_on_one_process_receive_on_another(hub_factory: HubFactory,
                                                         redis_server: RedisServer) -> None:
    url = redis_server.fresh_url()
    one, two = hub_factory("--redis", url, backend=None), hub_factory("--redis", url, backend=None)
    async with sse_stream(two.url, ["orders"]) as on_two, sse_stream(one.url, ["orders"]) as on_one, \
            httpx.AsyncClient(base_url=one.url, timeout=TIMEOUT) as c1, \
            httpx.AsyncClient(base_url=two.url, timeout=TIMEOUT) as c2:
        await asyncio.gather(*(publish(c, "orders", "t", f"{n}-{i}") for i in range(20)
                               for n, c in enumerate((c1, c2))))
        seen_two = [e["data"] for e in await on_two.events(40)]
        seen_one = [e["data"] for e in await on_one.events(40)]
    assert seen_one == seen_two
    assert sorted(seen_one) == sorted(f"{n}-{i}" for n in range(2) for i in range(20))


async def test_kill_9_mid_stream_then_resume_on_another_process(hub_factory: HubFactory,
                                                                redis_server: RedisServer) -> None:
    url = redis_server.fresh_url()
    doomed, survivor = hub_factory("--redis", url, backend=None), hub_factory("--redis", url, backend=None)
    count = 60
    async with httpx.AsyncClient(base_url=survivor.url, timeout=TIMEOUT) as client:
        async with sse_stream(doomed.url, ["feed"]) as stream:

            async def publisher() -> None:
                for i in range(count):
                    await publish(client, "feed", "t", i)

            publishing = asyncio.get_running_loop().create_task(publisher())
            first = await stream.events(15)
            doomed.stop(9)
            first += await read_until_end(stream)
            cursor = stream.last_id
            await publishing
        async with sse_stream(survivor.url, ["feed"], last_event_id=cursor) as resumed:
            rest = await resumed.events(count - len(first))
            await resumed.quiet(QUIET)
    assert [e["data"] for e in first + rest] == list(range(count))


async def test_pubsub_connection_killed_while_publishing(hub_factory: HubFactory, own_redis: RedisServer,
                                                         own_client: aioredis.Redis) -> None:
    hub = hub_factory("--redis", own_redis.url, backend=None)
    count = 200
    async with sse_stream(hub.url, ["k"]) as stream, httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as c:
        kills = []
        for i in range(count):
            await publish(c, "k", "t", i)
            if i % 25 == 10:
                await until(lambda: pubsub_connected(own_client), "the hub's pub/sub connection to Redis")
                kills.append(await own_client.client_kill_filter(_type="pubsub"))
        seen = [e["data"] for e in await stream.events(count)]
        await stream.quiet(QUIET)
    assert kills == [1] * 8
    assert seen == list(range(count))


async def test_flushall_gives_reset_epoch_changed(hub_factory: HubFactory, own_redis: RedisServer,
                                                  own_client: aioredis.Redis) -> None:
    hub = hub_factory("--redis", own_redis.url, backend=None)
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client, \
            sse_stream(hub.url, ["f"]) as live:
        before = [await publish(client, "f", "t", i) for i in range(3)]
        await live.events(3)
        await own_client.flushall()
        # A client resuming from before the flush is told at once, with nothing published since.
        async with sse_stream(hub.url, ["f"], last_event_id=before[-1]["cursor"]) as resumed:
            (reset,) = await resumed.events(1)
            assert (reset["control"], reset["reason"]) == ("reset", "epoch_changed")
            reads = await script_calls(own_client)
            await resumed.quiet(QUIET)
            assert await script_calls(own_client) - reads < 10  # waits for news, does not poll the log
            after = await publish(client, "f", "t", "new")
            (event,) = await resumed.events(1)
            assert (event["data"], event["offset"]) == ("new", 1)
        reset, event = await live.events(2)
    assert after["epoch"] != before[0]["epoch"]
    assert (reset["control"], reset["reason"]) == ("reset", "epoch_changed")
    assert (event["data"], event["epoch"], event["offset"]) == ("new", after["epoch"], 1)


async def test_unavailable_redis_answers_503_and_streams_recover(hub_factory: HubFactory,
                                                                 own_redis: RedisServer) -> None:
    hub = hub_factory("--redis", own_redis.url, backend=None)
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client, \
            sse_stream(hub.url, ["u"]) as stream:
        await publish(client, "u", "t", "before")
        await stream.events(1)
        own_redis.stop()
        response = await client.post("/v1/channels/u/events", json={"type": "t"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert (await client.get("/healthz")).status_code == 503
        own_redis.start()
        await publish_when_up(client, "u", "after")
        reset, event = await stream.events(2)
    # Redis came back without persistence: the log lost its past, and the open stream says so.
    assert (reset["control"], reset["reason"]) == ("reset", "epoch_changed")
    assert (event["data"], event["offset"]) == ("after", 1)


async def test_redis_restart_with_aof_keeps_the_epoch_and_resume_exact(
        hub_factory: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RedisServer(str(tmp_path_factory.mktemp("aof-redis")), "--appendonly", "yes", "--appendfsync", "always")
    with running(server):
        hub = hub_factory("--redis", server.url, backend=None)
        async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client, \
                sse_stream(hub.url, ["aof"]) as live:
            sent = [await publish(client, "aof", "t", i) for i in range(3)]
            await live.events(3)
            server.restart()
            sent += [await publish_when_up(client, "aof", i) for i in range(3, 5)]
            after_restart = await live.events(2)
            async with sse_stream(hub.url, ["aof"], last_event_id=sent[1]["cursor"]) as resumed:
                rest = await resumed.events(3)
                await resumed.quiet(QUIET)
    assert {e["epoch"] for e in sent} == {sent[0]["epoch"]}
    assert [(e["data"], e["offset"]) for e in after_restart] == [(3, 4), (4, 5)]
    assert [e["data"] for e in rest] == [2, 3, 4]


async def test_connections_redis_closed_while_idle_are_replaced_not_used(
        hub_factory: HubFactory, own_redis: RedisServer) -> None:
    """After a Redis restart every connection in the hub's pool is one the server closed; the next
    requests get fresh ones, not an error (redis-py before 5.0.8 handed them out)."""
    hub = hub_factory("--redis", own_redis.url, backend=None)
    pooled = 8
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        await publish(client, "idle", "t", 0)
        answers = await asyncio.gather(*(client.get("/v1/channels/idle/events") for _ in range(pooled)))
        assert [a.status_code for a in answers] == [200] * pooled
        own_redis.restart()
        statuses = [(await client.get("/v1/channels/idle/events")).status_code for _ in range(pooled)]
    assert statuses == [200] * pooled


def _channels_on_every_shard(cluster: RedisClusterServers) -> list[str]:
    """One channel name per master, by the cluster's slot ranges (created in node order)."""
    ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
    found: dict[int, str] = {}
    n = 0
    while len(found) < len(ranges):
        name = f"shard-{n}"
        slot = key_slot(redis_keys.live_channel(0, name))
        found.setdefault(next(i for i, (lo, hi) in enumerate(ranges) if lo <= slot <= hi), name)
        n += 1
    return [found[i] for i in range(len(ranges))]


async def test_cluster_publish_subscribe_across_shards_and_resume(hub_factory: HubFactory,
                                                                  redis_cluster: RedisClusterServers) -> None:
    redis_cluster.flush()
    # One names the cluster, the other finds out by itself.
    one = hub_factory("--redis", redis_cluster.url, "--redis-cluster", backend=None)
    two = hub_factory("--redis", redis_cluster.nodes[1].url, backend=None)
    channels = _channels_on_every_shard(redis_cluster)
    async with httpx.AsyncClient(base_url=one.url, timeout=TIMEOUT) as client:
        async with sse_stream(two.url, channels) as stream:
            for i, channel in enumerate(channels):
                await publish(client, channel, "t", i)
            got = await stream.events(len(channels))
            cursor = stream.last_id
            for node, channel in zip(redis_cluster.nodes, channels, strict=True):
                live = redis_keys.live_channel(0, channel).decode()
                assert node.cli("pubsub", "shardnumsub", live).split() == [live, "1"]
        for i, channel in enumerate(channels):
            await publish(client, channel, "t", 10 + i)
        async with sse_stream(one.url, channels, last_event_id=cursor) as resumed:
            rest = await resumed.events(len(channels))
            await resumed.quiet(QUIET)
    assert sorted((e["channel"], e["data"]) for e in got) == sorted((c, i) for i, c in enumerate(channels))
    assert sorted((e["channel"], e["data"]) for e in rest) == sorted((c, 10 + i) for i, c in enumerate(channels))


async def test_idempotency_key_holds_across_processes(hub_factory: HubFactory, redis_server: RedisServer) -> None:
    url = redis_server.fresh_url()
    one, two = hub_factory("--redis", url, backend=None), hub_factory("--redis", url, backend=None)
    body = {"type": "payment.created", "data": {"amount": 1}}
    headers = {"idempotency-key": "order-77"}
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        answers = await asyncio.gather(*(client.post(f"{hub.url}/v1/channels/pay/events", json=body, headers=headers)
                                         for hub in (one, two, one, two)))
        history = (await client.get(f"{one.url}/v1/channels/pay/events")).json()
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(history["events"]) == 1
