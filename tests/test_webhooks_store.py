"""One test suite for every DeliveryStore implementation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis, RedisCluster

from pushhub.backends.sqlite import Database
from pushhub.cursor import Position
from pushhub.webhooks import endpoints
from pushhub.webhooks.redis_store import RedisDeliveryStore
from pushhub.webhooks.registry import Registry
from pushhub.webhooks.store import (
    FAILED,
    PENDING,
    SUCCEEDED,
    Attempt,
    Delivery,
    DeliveryStore,
    MemoryDeliveryStore,
    SqliteDeliveryStore,
    new_delivery_id,
)

from .redis_servers import RedisClusterServers, RedisServer


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DeliveryStore]:
    client: Redis | RedisCluster | None = None
    database: Database | None = None
    made: DeliveryStore
    if request.param == "memory":
        made = MemoryDeliveryStore()
    elif request.param == "sqlite":
        database = Database(str(tmp_path / "hub.db"))
        database.open()
        made = SqliteDeliveryStore(database)
    elif request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        client = Redis.from_url(server.fresh_url())
        made = RedisDeliveryStore(lambda: client, lease=30.0)
    else:  # every script must stay in one slot
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flush()
        client = RedisCluster.from_url(cluster.url)
        made = RedisDeliveryStore(lambda: client, lease=30.0)
    yield made
    if database is not None:
        database.close()
    if client is not None:
        await client.aclose()


def delivery(endpoint_id: str, offset: int, now: float = 100.0, channel: str = "orders") -> Delivery:
    return Delivery(new_delivery_id(), endpoint_id, channel, "ep0ch", offset, f"evt_{offset}", "t", b"{}",
                    next_at=now, created_at=now)


def test_delivery_ids_are_unique_and_in_creation_order() -> None:
    made = [new_delivery_id() for _ in range(2000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(i.startswith("dl_") and len(i) == len(made[0]) for i in made)


async def test_endpoints_round_trip(store: DeliveryStore) -> None:
    ep = endpoints.create({"url": "https://example.com/h", "channels": ["a.*"], "types": ["x"],
                           "headers": {"X-A": "1"}, "retry_schedule": "1s,2m", "rate_limit": 2},
                          https_only=False, allow=[], now=1.0)
    ep = endpoints.rotate(ep, endpoints.signing.generate_secret(), 60.0, 2.0)
    await store.save_endpoint(ep)
    assert await store.endpoint(ep.id) == ep
    assert await store.endpoints() == [ep]
    assert await store.delete_endpoint(ep.id) and not await store.delete_endpoint(ep.id)
    assert await store.endpoint(ep.id) is None


async def test_cursor_moves_with_its_deliveries(store: DeliveryStore) -> None:
    await store.track("orders", Position("ep0ch", 3))
    await store.track("orders", Position("ep0ch", 9))  # already followed: unchanged
    assert await store.cursors() == {"orders": Position("ep0ch", 3)}
    await store.enqueue("orders", Position("ep0ch", 5), [delivery("ep_a", 4), delivery("ep_a", 5)])
    await store.enqueue("orders", Position("ep0ch", 5), [delivery("ep_a", 5)])  # a duplicate is skipped
    assert await store.cursors() == {"orders": Position("ep0ch", 5)}
    assert [d.offset for d in await store.deliveries(endpoint_id="ep_a")] == [5, 4]
    # Compare-and-set: a process that read the cursor at 3 is too late, and writes nothing.
    assert not await store.enqueue("orders", Position("ep0ch", 6), [delivery("ep_a", 6)], after=Position("ep0ch", 3))
    assert await store.enqueue("orders", Position("ep0ch", 6), [delivery("ep_a", 6)], after=Position("ep0ch", 5))
    assert await store.cursor("orders") == Position("ep0ch", 6) and await store.cursor("other") is None
    assert len(await store.deliveries()) == 3


async def test_due_order_and_attempts(store: DeliveryStore) -> None:
    later, sooner = delivery("ep_a", 1, now=50.0), delivery("ep_a", 2, now=10.0)
    await store.enqueue("orders", Position("ep0ch", 2), [later, sooner, delivery("ep_b", 1)])
    assert [d.offset for d in await store.due("ep_a", 60.0, 10)] == [2, 1]
    assert [d.offset for d in await store.due("ep_a", 20.0, 10)] == [2]
    assert [d.offset for d in await store.due("ep_a", 0.0, 10, ordered=True)] == [1]
    assert await store.next_due("ep_a") == 10.0
    (due,) = await store.due("ep_a", 20.0, 10)
    due.attempts, due.tries, due.next_at, due.status = 1, 1, 80.0, PENDING
    await store.finish_attempt(due, Attempt(due.id, "ep_a", due.event_id, 1, 20.0, 3.5, 500, "no", None))
    assert await store.next_due("ep_a") == 50.0
    (attempt,) = await store.attempts(event_id=due.event_id)
    assert (attempt.status, attempt.response, attempt.latency_ms, attempt.id > 0) == (500, "no", 3.5, True)
    assert await store.attempts(event_id=due.event_id, endpoint_id="ep_a") == [attempt]
    assert await store.attempts(event_id="evt_1") == [] and await store.attempts(event_id=due.event_id, before=1) == []
    assert await store.attempts(endpoint_id="ep_b") == []


async def test_resend_restarts_and_wins_over_an_attempt_in_flight(store: DeliveryStore) -> None:
    await store.enqueue("orders", Position("ep0ch", 1), [delivery("ep_a", 1)])
    (inflight,) = await store.due("ep_a", 100.0, 1)
    again = delivery("ep_a", 1)
    assert await store.resend([again], 200.0) == 1
    inflight.attempts, inflight.status = 1, FAILED
    await store.finish_attempt(inflight, Attempt(inflight.id, "ep_a", "evt_1", 1, 150.0, 1.0, 500))
    (current,) = await store.deliveries(endpoint_id="ep_a")
    assert current.id == inflight.id  # the same delivery: webhook-id and history are kept
    assert (current.status, current.attempts, current.next_at, current.tries) == (PENDING, 1, 200.0, 0)


async def test_finish_attempts_records_a_batch_in_one_write(store: DeliveryStore) -> None:
    await store.enqueue("orders", Position("ep0ch", 3), [delivery("ep_a", n) for n in (1, 2, 3)])
    done, retried, resent = await store.due("ep_a", 100.0, 10)
    gone = delivery("ep_a", 9)  # never stored (its endpoint was deleted meanwhile): no attempt for it
    assert await store.resend([delivery("ep_a", 3)], 100.0) == 1
    done.status, done.attempts, done.updated_at = SUCCEEDED, 1, 101.0
    retried.attempts, retried.tries, retried.next_at, retried.last_status = 1, 1, 160.0, 503
    resent.status, resent.attempts, resent.last_status = FAILED, 1, 500
    await store.finish_attempts([
        (d, Attempt(d.id, "ep_a", d.event_id, 1, 100.0, 1.0, status))
        for d, status in ((done, 200), (retried, 503), (resent, 500), (gone, 200))])
    found = {d.offset: d for d in await store.deliveries(endpoint_id="ep_a")}
    assert (found[1].status, found[1].attempts) == (SUCCEEDED, 1)
    assert (found[2].status, found[2].next_at, found[2].tries, found[2].last_status) == (PENDING, 160.0, 1, 503)
    assert (found[3].status, found[3].attempts, found[3].last_status) == (PENDING, 1, 500)  # the resend wins
    assert sorted(a.status or 0 for a in await store.attempts(endpoint_id="ep_a")) == [200, 500, 503]
    assert await store.next_due("ep_a") == 100.0 and [d.offset for d in await store.due("ep_a", 100.0, 10)] == [3]
    await store.finish_attempts([])


async def test_listing_pages_and_prune(store: DeliveryStore) -> None:
    items = [delivery("ep_a", n) for n in range(1, 6)]
    await store.enqueue("orders", Position("ep0ch", 5), items)
    first = await store.deliveries(limit=2)
    rest = await store.deliveries(limit=10, before=first[-1].seq)
    assert [d.offset for d in first + rest] == [5, 4, 3, 2, 1]
    (done,) = await store.due("ep_a", 100.0, 1)
    done.status, done.updated_at, done.attempts = SUCCEEDED, 100.0, 1
    await store.finish_attempt(done, Attempt(done.id, "ep_a", done.event_id, 1, 100.0, 1.0, 200))
    assert await store.prune(before=200.0) == 2  # its attempt and the finished delivery; pending ones stay
    assert len(await store.deliveries()) == 4 and await store.attempts() == []


async def test_attempts_keep_headers_filter_by_outcome_and_count_minutes(store: DeliveryStore) -> None:
    await store.enqueue("orders", Position("ep0ch", 3), [delivery("ep_a", n) for n in (1, 2, 3)])
    first, second, third = await store.due("ep_a", 100.0, 10)
    headers = {"webhook-id": "evt_1", "webhook-signature": "v1,…"}
    await store.finish_attempts([
        (first, Attempt(first.id, "ep_a", first.event_id, 1, 7200.0, 10.0, 200, request_headers=headers)),
        (second, Attempt(second.id, "ep_a", second.event_id, 1, 7230.0, 30.0, 500)),
        (third, Attempt(third.id, "ep_a", third.event_id, 1, 7260.0, 5.0, None, error="timed out"))])
    ok = await store.attempts(endpoint_id="ep_a", succeeded=True)
    assert [(a.status, a.request_headers) for a in ok] == [(200, headers)]
    assert [a.status for a in await store.attempts(endpoint_id="ep_a", succeeded=False)] == [None, 500]
    assert [a.status for a in await store.attempts(succeeded=False, limit=1)] == [None]
    first.attempts = 2
    await store.finish_attempt(first, Attempt(first.id, "ep_a", first.event_id, 2, 7210.0, 20.0, 204))
    minutes = await store.minutes("ep_a", 7200.0, 7300.0)
    assert [(m.minute, m.succeeded, m.failed, m.latency_ms) for m in minutes] == [
        (7200, 2, 1, 60.0), (7260, 0, 1, 5.0)]
    assert minutes[0].as_dict()["mean_latency_ms"] == 20.0
    assert [m.minute for m in await store.minutes("ep_a", 7260.0, 7300.0)] == [7260]
    assert await store.minutes("ep_b", 0.0, 1e9) == []


async def test_redis_leases_and_endpoint_versions(redis_server: RedisServer) -> None:
    """Two stores on one Redis stand for two hub processes."""
    client = Redis.from_url(redis_server.fresh_url())
    first, second = (RedisDeliveryStore(lambda: client, lease=30.0) for _ in range(2))
    try:
        await first.enqueue("orders", Position("ep0ch", 1), [delivery("ep_a", 1)])
        (mine,) = await first.due("ep_a", 100.0, 10)
        (theirs,) = await second.due("ep_a", 100.0, 10)
        assert await first.claim(mine, 100.0) and not await second.claim(theirs, 100.0)
        assert await second.due("ep_a", 120.0, 10) == [] and await second.next_due("ep_a") == 130.0
        (ordered,) = await second.due("ep_a", 120.0, 10, ordered=True)
        assert ordered.next_at == 130.0  # the ordered view waits for the lease too
        (expired,) = await second.due("ep_a", 131.0, 10)  # the holder died: the lease ran out
        assert await second.claim(expired, 131.0)
        expired.attempts, expired.tries, expired.next_at = 1, 1, 200.0
        await second.finish_attempt(expired, Attempt(expired.id, "ep_a", expired.event_id, 1, 131.0, 2.0, 500))
        assert await first.next_due("ep_a") == 200.0 and len(await first.attempts(endpoint_id="ep_a")) == 1
        resent = await first.resend([delivery("ep_a", 1)], 150.0)  # a replay makes it due again at once
        (again,) = await second.due("ep_a", 150.0, 10)
        assert resent == 1 and not await first.claim(mine, 150.0) and await second.claim(again, 150.0)
        version = await first.endpoints_version()
        ep = endpoints.create({"url": "https://example.com/h"}, https_only=False, allow=[], now=1.0)
        await second.save_endpoint(ep)
        assert await first.endpoints_version() != version and await first.endpoints() == [ep]
        assert not await first.enqueue("orders", Position("ep0ch", 2), [delivery(ep.id, 2)], version=version)
        assert await second.delete_endpoint(ep.id) and await first.endpoints() == []
    finally:
        await client.aclose()


def gets(server: RedisServer) -> int:
    """How many GET commands the Redis server has run."""
    for line in server.cli("info", "commandstats").splitlines():
        if line.startswith("cmdstat_get:"):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


async def test_refreshes_of_one_loop_turn_share_one_version_read(redis_server: RedisServer) -> None:
    """Two registries on one Redis stand for two hub processes; the refreshes asked for together
    read the endpoints version once, and one asked for after that read reads it again."""
    client = Redis.from_url(redis_server.fresh_url())
    theirs, ours = (RedisDeliveryStore(lambda: client, lease=30.0) for _ in range(2))
    changed: list[str] = []

    async def forget(endpoint_id: str) -> None:
        changed.remove(endpoint_id)

    registry = Registry(ours, lambda e: changed.append(e.id), forget)
    try:
        await registry.load()
        ep = endpoints.create({"url": "https://example.com/h"}, https_only=False, allow=[], now=1.0)
        await theirs.save_endpoint(ep)
        before = gets(redis_server)
        await asyncio.gather(*(registry.refresh() for _ in range(20)))
        assert gets(redis_server) - before == 2  # one look at the version, one read after it moved
        assert changed == [ep.id] and registry.follows("anything")

        first = asyncio.ensure_future(registry.refresh())
        await asyncio.sleep(0)  # the first refresh has sent its read
        await theirs.delete_endpoint(ep.id)
        await asyncio.gather(first, registry.refresh())  # the second must see the delete
        assert changed == [] and not registry.follows("anything")
    finally:
        await client.aclose()
