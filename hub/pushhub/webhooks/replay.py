"""Sending deliveries again on an administrator's request: one delivery, an endpoint's failed ones,
or every event of some channels after a cursor or since a time. A replay reuses the delivery of
each event (same ``webhook-id``), restarting its schedule."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from ..backends.base import Broker
from ..cursor import Position
from .clock import Clock
from .endpoints import Endpoint
from .errors import NotFound
from .registry import Registry
from .store import FAILED, Delivery, DeliveryStore, new_delivery_id

PAGE = 500


def event_seconds(event_time: str) -> float:
    return datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp()


class Replay:
    def __init__(self, broker: Broker, store: DeliveryStore, registry: Registry, clock: Clock,
                 wake: Callable[[str], None]) -> None:
        self.broker = broker
        self.store = store
        self.registry = registry
        self.clock = clock
        self.wake = wake

    async def delivery(self, delivery_id: str) -> Delivery:
        delivery = await self.store.delivery(delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        await self.store.resend([delivery], self.clock.now())
        self.wake(delivery.endpoint_id)
        found = await self.store.delivery(delivery_id)
        assert found is not None
        return found

    async def failed(self, endpoint_id: str) -> int:
        self.registry.get(endpoint_id)
        count = 0
        while True:
            failed = await self.store.deliveries(endpoint_id=endpoint_id, status=FAILED, limit=PAGE)
            if not failed:
                break
            count += await self.store.resend(failed, self.clock.now())
        self.wake(endpoint_id)
        return count

    async def events(self, endpoint_id: str, *, channels: list[str], after: Position | None = None,
                     since: float | None = None) -> int:
        """Deliver again every event of ``channels`` after ``after`` (one channel) or since ``since``."""
        endpoint = self.registry.get(endpoint_id)
        now = self.clock.now()
        count = 0
        for channel in channels:
            state = await self.broker.state(channel)
            offset = state.earliest - 1
            if after is not None and after.epoch == state.epoch:
                offset = after.offset
            while True:
                page = await self.broker.history(channel, offset, PAGE)
                if not page.events:
                    break
                chosen = [e for e in page.events if endpoint.matches(channel, e.type)
                          and (since is None or event_seconds(e.time) >= since)]
                count += await self.store.resend([
                    Delivery(new_delivery_id(), endpoint.id, channel, e.epoch, e.offset, e.id, e.type, e.json,
                             next_at=now, created_at=now) for e in chosen], now)
                offset = page.events[-1].offset
        self.wake(endpoint_id)
        return count


def channels_for(endpoint: Endpoint, followed: Iterable[str]) -> list[str]:
    """The channels whose events may concern ``endpoint``: those followed, and those it names."""
    named = [c for c in endpoint.channels if "*" not in c]
    return sorted({c for c in followed if endpoint.matches_channel(c)} | set(named))
