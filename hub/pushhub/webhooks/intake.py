"""Turning appended events into deliveries (the outbox).

The intake keeps a durable cursor per channel over the log. Before the first publish to a channel
that some endpoint matches, it records the channel's current top as the cursor; with each append,
before the publisher is answered, it makes one delivery per matching enabled endpoint from the
appended events and moves the cursor. A store that shares its transactions with the log (SQLite)
makes them in the append's own transaction (:meth:`Intake.join`), so there is one commit for both;
any other makes them in a store transaction of their own right after the append. Only when those
events do not start right after the cursor (another publish to the channel got there first, the log
changed epoch, a previous intake failed) does it read the log from the cursor instead. At start it catches
up from every stored cursor, so an event appended just before a crash still gets its deliveries; a
background task retries a channel whose intake failed.

With a store several processes share, a cursor move or endpoint change lost to another process
makes the intake read again (the store refuses the outdated write).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence

from ..backends.base import Broker
from ..backends.sqlite import Appended
from ..cursor import Position
from ..events import Event
from ..tasks import cancel_and_wait
from .clock import Clock
from .registry import Registry
from .store import Committed, Delivery, DeliveryStore, Moved, new_delivery_id

logger = logging.getLogger("pushhub.webhooks")

PAGE = 500
INTAKE_RETRY = 1.0


class Intake:
    def __init__(self, broker: Broker, store: DeliveryStore, registry: Registry, clock: Clock,
                 wake: Callable[[str, Sequence[Delivery]], None]) -> None:
        """``wake(endpoint_id, fresh)`` is called for each endpoint that got new deliveries; ``fresh``
        are those deliveries when they are all of them, each just stored as a new row, else empty."""
        self.broker = broker
        self.store = store
        self.registry = registry
        self.clock = clock
        self.wake = wake
        self.cursors: dict[str, Position] = {}
        self.dirty: set[str] = set()  # channels whose log must be read from the cursor
        self._dirty_wake = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}  # one intake at a time per channel
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.cursors = await self.store.cursors()
        self.catch_up(self.cursors)
        self._task = asyncio.get_running_loop().create_task(self._retry())
        self.store.join_appends(self.join)

    async def close(self) -> None:
        self.store.join_appends(None)
        await cancel_and_wait([self._task])

    def catch_up(self, channels: Iterable[str]) -> None:
        """Read these channels' logs from their cursors soon (in the background)."""
        self.dirty.update(channels)
        if self.dirty:
            self._dirty_wake.set()

    def follow(self, channel: str, position: Position) -> None:
        """Another process started following ``channel``: take in its events from ``position``."""
        if channel not in self.cursors:
            self.cursors[channel] = position
            self.catch_up([channel])

    def ready(self, channel: str) -> bool:
        """Whether :meth:`before_publish` has nothing to do for ``channel``."""
        return channel in self.cursors or (not self.registry.store.shared and not self.registry.follows(channel))

    async def before_publish(self, channel: str) -> None:
        if channel not in self.cursors:
            await self.registry.refresh()  # an endpoint registered through another process may follow it now
        if channel in self.cursors or not self.registry.follows(channel):
            return
        state = await self.broker.state(channel)
        if channel in self.cursors:
            return
        position = self.cursors[channel] = Position(state.epoch, state.top)
        try:
            await self.store.track(channel, position)
        except BaseException:
            del self.cursors[channel]  # the publish fails too: nothing is appended untracked
            raise

    def join(self, appended: Appended) -> tuple[list[Moved], Committed] | None:
        """The deliveries of the events just appended, for the append's own transaction (which
        commits them, or fails with them): for each followed channel whose events start right after
        its cursor, and that no other intake is reading; :meth:`published` takes in the others."""
        moves: list[Moved] = []
        cursors: dict[str, Position] = {}  # as the transaction leaves them
        for channel, events in appended:
            cursor = cursors.get(channel) or self.cursors.get(channel)
            lock = self._locks.get(channel)
            first = events[0]
            if (cursor is None or (lock is not None and lock.locked()) or first.epoch != cursor.epoch
                    or first.offset != cursor.offset + 1):
                continue
            cursors[channel] = events[-1].position
            moves.append((channel, events[-1].position, self._deliveries(channel, events)))
        if not moves:
            return None

        def committed(fresh: bool) -> None:
            for channel, position, deliveries in moves:
                self.cursors[channel] = position
                self._woken(deliveries, fresh)
        return moves, committed

    def _woken(self, deliveries: list[Delivery], fresh: bool) -> None:
        """Wake each endpoint of ``deliveries``, handing it its own (oldest first) when they are ``fresh``."""
        own: dict[str, list[Delivery]] = {}
        for delivery in deliveries:
            own.setdefault(delivery.endpoint_id, []).append(delivery)
        for endpoint_id, handed in own.items():
            self.wake(endpoint_id, handed if fresh else ())

    def settled(self, channel: str, events: list[Event]) -> bool:
        """Whether :meth:`published` has nothing to do: nobody follows ``channel``, or its cursor is
        past ``events`` already (the append's transaction took them in)."""
        cursor = self.cursors.get(channel)
        return cursor is None or bool(events and events[-1].epoch == cursor.epoch
                                      and events[-1].offset <= cursor.offset)

    async def published(self, channel: str, events: list[Event]) -> None:
        """Turn the new events into deliveries before the publisher is answered (unless the append
        did already, :meth:`join`): a publisher can then never outrun the intake far enough for
        retention to trim events it has not read."""
        if self.settled(channel, events):
            return
        try:
            await self._take_in(channel, events)
        except BaseException as exc:
            self.catch_up([channel])  # the retry task reads the log from the cursor
            if not isinstance(exc, Exception):
                raise
            logger.exception("could not turn channel %s's events into deliveries; retrying", channel)

    async def _retry(self) -> None:
        while True:
            await self._dirty_wake.wait()
            self._dirty_wake.clear()
            for channel in list(self.dirty):
                self.dirty.discard(channel)
                try:
                    await self._take_in(channel, ())
                except Exception:
                    logger.exception("could not turn channel %s's events into deliveries; retrying", channel)
                    self.dirty.add(channel)
            if self.dirty and not self._dirty_wake.is_set():
                await asyncio.sleep(INTAKE_RETRY)
                self._dirty_wake.set()

    async def _take_in(self, channel: str, handed: Sequence[Event]) -> None:
        lock = self._locks.get(channel)
        if lock is None:
            lock = self._locks[channel] = asyncio.Lock()
        async with lock:
            if handed:
                cursor = self.cursors[channel]
                first, last = handed[0], handed[-1]
                if last.epoch == cursor.epoch and last.offset <= cursor.offset:
                    return  # a later publish's intake read these from the log already
                if (first.epoch == cursor.epoch and first.offset == cursor.offset + 1
                        and await self._advance(channel, cursor, last.position, handed)):
                    return
            await self._read_log(channel)

    def _deliveries(self, channel: str, events: Sequence[Event]) -> list[Delivery]:
        now = self.clock.now()
        endpoints = [e for e in self.registry.endpoints.values() if e.enabled and e.matches_channel(channel)]
        return [Delivery(new_delivery_id(), endpoint.id, channel, event.epoch, event.offset, event.id, event.type,
                         event.json, next_at=now, created_at=now)
                for event in events for endpoint in endpoints if endpoint.matches(channel, event.type)]

    async def _read_log(self, channel: str) -> None:
        while True:
            cursor = self.cursors[channel]
            page = await self.broker.history(channel, cursor.offset, PAGE)
            state = page.state
            if state.epoch != cursor.epoch:
                logger.warning("channel %s's log changed epoch: delivering from its earliest retained event", channel)
                await self._advance(channel, cursor, Position(state.epoch, state.earliest - 1), ())
                continue
            events = page.events
            if not events:
                return
            if events[0].offset > cursor.offset + 1:
                logger.warning("channel %s: events %d-%d left the log before they were dispatched", channel,
                               cursor.offset + 1, events[0].offset - 1)
            if await self._advance(channel, cursor, events[-1].position, events) and len(events) < PAGE:
                return

    async def _advance(self, channel: str, cursor: Position, position: Position, events: Sequence[Event]) -> bool:
        """Move the channel's cursor from ``cursor`` to ``position`` with the deliveries of ``events``;
        if another process moved it, or changed the endpoints, first, take in their view instead (False)."""
        version = self.registry.version  # of the endpoints the deliveries are made for
        deliveries = self._deliveries(channel, events)
        if not await self.store.enqueue(channel, position, deliveries, after=cursor, version=version):
            await self.registry.refresh()
            stored = await self.store.cursor(channel)
            if stored is None:  # the store lost it (Redis flushed): follow the channel again from here
                await self.store.track(channel, cursor)
            self.cursors[channel] = stored or cursor
            return False
        self.cursors[channel] = position
        self._woken(deliveries, False)
        return True
