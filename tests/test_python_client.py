"""The Python client (clients/python) against a real hub process: publish, history, subscriptions
over SSE and WebSocket, and resuming with no loss across a hub restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pushhub_client import (
    Backoff,
    Client,
    Event,
    HubUnreachable,
    RequestRejected,
    Reset,
    SSESubscription,
    Subscription,
)

from .utils import TIMEOUT, HubProcess, free_port, publish, ws_client

FAST = Backoff(initial=TIMEOUT / 100, maximum=TIMEOUT / 10)


@pytest.fixture
def one_hub(hub_factory: Callable[..., HubProcess]) -> HubProcess:
    """The client's behaviour does not depend on the backend (the restart tests pick SQLite)."""
    return hub_factory(backend="memory")


@pytest.fixture
async def pushhub(one_hub: HubProcess) -> AsyncIterator[Client]:
    async with Client(one_hub.url, backoff=FAST, timeout=TIMEOUT) as client:
        yield client


class Collector:
    """Runs a subscription in a task; items land in ``items``, waiters wake as they arrive."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.items: list[Event | Reset] = []
        self._changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for item in self.subscription:
            self.items.append(item)
            self._changed.set()

    @property
    def events(self) -> list[Event]:
        return [item for item in self.items if isinstance(item, Event)]

    async def wait_for(self, count: int) -> list[Event]:
        async with asyncio.timeout(4 * TIMEOUT):
            while len(self.events) < count:
                if self.task.done():
                    self.task.result()
                self._changed.clear()
                await self._changed.wait()
        return self.events

    async def connected(self) -> None:
        await asyncio.wait_for(self.subscription.connected.wait(), TIMEOUT)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.subscription.aclose()


@contextlib.asynccontextmanager
async def collecting(subscription: Subscription) -> AsyncIterator[Collector]:
    collector = Collector(subscription)
    try:
        await collector.connected()
        yield collector
    finally:
        await collector.stop()


async def test_publish_and_read_history_page_by_page(pushhub: Client) -> None:
    first = await pushhub.publish("orders", "order.created", {"n": 1}, meta={"source": "test"})
    batch = await pushhub.publish_batch("orders", [{"type": "order.paid", "data": {"n": n}} for n in (2, 3, 4)])
    assert first.offset == 1 and [p.offset for p in batch] == [2, 3, 4]
    assert batch[-1].cursor == f"{batch[-1].epoch}.4"

    items = [item async for item in pushhub.history("orders", page_size=3)]
    assert all(isinstance(item, Event) for item in items)
    assert [item.data for item in items if isinstance(item, Event)] == [{"n": n} for n in (1, 2, 3, 4)]
    assert isinstance(items[0], Event) and items[0].meta == {"source": "test"} and items[0].id == first.id

    page = await pushhub.history_page("orders", after=batch[0].cursor, limit=1)
    assert [e.offset for e in page.events] == [3] and page.more and page.reset is None
    assert [e.offset async for e in pushhub.history("orders", after=page.cursor) if isinstance(e, Event)] == [4]


async def test_history_from_another_epoch_starts_with_a_reset(pushhub: Client) -> None:
    await pushhub.publish("h", "t", 1)
    items = [item async for item in pushhub.history("h", after="zzzzzzzz.7")]
    assert isinstance(items[0], Reset) and items[0].reason == "epoch_changed"
    assert [e.data for e in items[1:] if isinstance(e, Event)] == [1]


async def test_rejections_are_typed(pushhub: Client, hub_factory: Callable[..., HubProcess]) -> None:
    with pytest.raises(RequestRejected) as bad:
        await pushhub.publish("orders", "not a type!")
    assert (bad.value.status, bad.value.code) == (422, "bad_event")

    guarded = hub_factory("--publisher-key", "s3cret", backend="memory")
    async with Client(guarded.url, timeout=TIMEOUT) as anonymous, \
            Client(guarded.url, key="s3cret", timeout=TIMEOUT) as publisher:
        with pytest.raises(RequestRejected) as unauthorized:
            await anonymous.publish("x", "t")
        assert unauthorized.value.status == 401
        assert (await publisher.publish("x", "t")).offset == 1

    async def key_as_token() -> str:
        return "s3cret"

    async with Client(guarded.url, token_provider=key_as_token, timeout=TIMEOUT) as provided:
        assert (await provided.publish("x", "t")).offset == 2

    async with Client(f"http://127.0.0.1:{free_port()}", timeout=TIMEOUT) as nowhere:
        with pytest.raises(HubUnreachable):
            await nowhere.publish("x", "t")


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_subscribe_several_channels_with_type_filter(pushhub: Client, transport: str) -> None:
    subscription = (pushhub.subscribe if transport == "sse" else pushhub.subscribe_ws)(["a", "b"], types=["pay.*"])
    async with collecting(subscription) as collector:
        await pushhub.publish("a", "pay.created", 1)
        await pushhub.publish("b", "refund.created", 2)
        await pushhub.publish("b", "pay.failed", 3)
        events = await collector.wait_for(2)
    assert [(e.channel, e.type, e.data) for e in events] == [("a", "pay.created", 1), ("b", "pay.failed", 3)]


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_bad_subscription_is_rejected_not_retried(pushhub: Client, transport: str) -> None:
    subscription = (pushhub.subscribe if transport == "sse" else pushhub.subscribe_ws)("no spaces allowed")
    with pytest.raises(RequestRejected) as rejected:
        async for _ in subscription:
            pass
    assert rejected.value.code == "bad_channel"
    assert subscription.reconnects == 0


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_resume_from_a_foreign_epoch_surfaces_reset(pushhub: Client, transport: str) -> None:
    await pushhub.publish("r", "t", "kept")
    subscription = (pushhub.subscribe("r", cursor="zzzzzzzz.3") if transport == "sse"
                    else pushhub.subscribe_ws("r", cursors={"r": "zzzzzzzz.3"}))
    async with collecting(subscription) as collector:
        await collector.wait_for(1)
    reset, event = collector.items[:2]
    assert isinstance(reset, Reset) and (reset.channel, reset.reason) == ("r", "epoch_changed")
    assert isinstance(event, Event) and event.data == "kept"


def sequence_of(events: list[Event]) -> list[int]:
    return sorted(int(e.data["seq"]) for e in events)


def assert_exactly_once(events: list[Event], count: int) -> None:
    assert sequence_of(events) == list(range(1, count + 1))
    for channel in {e.channel for e in events}:
        offsets = [e.offset for e in events if e.channel == channel]
        assert offsets == sorted(offsets), f"{channel} out of order"


async def publish_seq(client: Client, numbers: range) -> None:
    for n in numbers:
        await client.publish(f"seq{n % 2}", "tick", {"seq": n})


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_hub_restart_mid_stream_loses_nothing(hub_factory: Callable[..., HubProcess], transport: str) -> None:
    hub = hub_factory(backend="sqlite")
    async with Client(hub.url, backoff=FAST, timeout=TIMEOUT) as client:
        subscription = (client.subscribe if transport == "sse" else client.subscribe_ws)(["seq0", "seq1"])
        async with collecting(subscription) as collector:
            await publish_seq(client, range(1, 31))
            await collector.wait_for(30)
            await asyncio.to_thread(hub.restart)
            # Published while the client is still reconnecting: it must catch up from its cursor.
            await publish_seq(client, range(31, 61))
            await collector.wait_for(60)
            assert subscription.reconnects >= 1
            assert not [item for item in collector.items if isinstance(item, Reset)]
            assert_exactly_once(collector.events, 60)
            saved: Any = subscription.cursor if isinstance(subscription, SSESubscription) else subscription.cursors

        # A new subscription from the saved cursor continues exactly where the first one stopped.
        await publish_seq(client, range(61, 71))
        later = (client.subscribe(["seq0", "seq1"], cursor=saved) if transport == "sse"
                 else client.subscribe_ws(["seq0", "seq1"], cursors=saved))
        async with collecting(later) as collector:
            events = await collector.wait_for(10)
        assert sequence_of(events) == list(range(61, 71))


async def test_websocket_resume_catches_up_from_history(hub: HubProcess) -> None:
    """Regression: catch-up events and resets over WebSocket used to be framed twice."""
    async with Client(hub.url, timeout=TIMEOUT) as client:
        first = await client.publish("w", "t", 1)
        await client.publish("w", "t", 2)
    async with ws_client(hub.ws_url) as ws:
        await ws.subscribe("w", cursor=first.cursor)
        message = await ws.recv()
        assert (message["op"], message["event"]["data"]) == ("event", 2)
        await ws.request(op="unsubscribe", channel="w")
        await ws.subscribe("w", cursor="zzzzzzzz.1")
        reset = await ws.recv()
        assert (reset["op"], reset["reason"]) == ("reset", "epoch_changed")


async def test_sse_event_cursor_is_the_hub_cursor(one_hub: HubProcess, pushhub: Client) -> None:
    subscription = pushhub.subscribe("agree")
    async with collecting(subscription) as collector, httpx.AsyncClient(base_url=one_hub.url, timeout=TIMEOUT) as raw:
        sent = await publish(raw, "agree", "t", 5)
        (event,) = await collector.wait_for(1)
    assert event.cursor == sent["cursor"] == subscription.cursor
