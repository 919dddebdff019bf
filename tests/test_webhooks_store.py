"""One test suite for every DeliveryStore implementation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.cursor import Position
from hub.webhooks import endpoints
from hub.webhooks.store import (
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


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeliveryStore]:
    made: DeliveryStore = MemoryDeliveryStore() if request.param == "memory" else SqliteDeliveryStore(
        str(tmp_path / "hub.db"))
    made.open()
    yield made
    made.close()


def delivery(endpoint_id: str, offset: int, now: float = 100.0, channel: str = "orders") -> Delivery:
    return Delivery(new_delivery_id(), endpoint_id, channel, "ep0ch", offset, f"evt_{offset}", "t", b"{}",
                    next_at=now, created_at=now)


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
