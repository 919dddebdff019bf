"""The single-process broker: a log store on this machine, live fan-out inside this process.

A :class:`Store` keeps the logs and the idempotency records of their publishes; an append with a
:class:`~.base.Once` checks and stores its record in the same step (for SQLite, the same
transaction).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence

from ..cursor import new_epoch
from ..events import Event, EventDraft
from ..retention import RetentionPolicy
from .base import LEGACY_SCOPE, Broker, HistoryPage, Once, OnEvents, Published, Recorded, StreamState

EXPIRE_INTERVAL = 30.0


class Store(abc.ABC):
    """A synchronous log store. Calls are short and made from the event loop's thread."""

    def __init__(self, retention: RetentionPolicy) -> None:
        self.retention = retention

    @abc.abstractmethod
    def append(self, channel: str, drafts: Sequence[EventDraft], now: float, once: Once | None = None) -> Published:
        """Append ``drafts``, or with ``once`` return the record already stored (see :meth:`Broker.publish`)."""

    @abc.abstractmethod
    def read(self, channel: str, after: int, limit: int) -> HistoryPage: ...

    @abc.abstractmethod
    def state(self, channel: str) -> StreamState: ...

    @abc.abstractmethod
    def expire(self, now: float) -> int:
        """Drop events older than their channel's age limit, and expired idempotency records;
        return how many events were dropped."""


class _MemoryLog:
    __slots__ = ("entries", "epoch", "top")

    def __init__(self) -> None:
        self.epoch = new_epoch()
        self.top = 0
        self.entries: deque[tuple[float, Event]] = deque()

    def state(self) -> StreamState:
        earliest = self.entries[0][1].offset if self.entries else self.top + 1
        return StreamState(self.epoch, self.top, earliest)


class MemoryStore(Store):
    """Keeps every log in this process's memory: a restart starts every channel in a new epoch."""

    def __init__(self, retention: RetentionPolicy) -> None:
        super().__init__(retention)
        self._logs: dict[str, _MemoryLog] = {}
        self._records: dict[tuple[str, str, str], tuple[float, Recorded]] = {}  # (channel, scope, key)

    def _log(self, channel: str) -> _MemoryLog:
        log = self._logs.get(channel)
        if log is None:
            log = self._logs[channel] = _MemoryLog()
        return log

    def _recorded(self, channel: str, once: Once, now: float) -> Recorded | None:
        for scope in (once.scope, LEGACY_SCOPE):
            found = self._records.get((channel, scope, once.key))
            if found is not None and found[0] > now:
                return found[1]
        return None

    def append(self, channel: str, drafts: Sequence[EventDraft], now: float, once: Once | None = None) -> Published:
        if once is not None:
            recorded = self._recorded(channel, once, now)
            if recorded is not None:
                return Published([], recorded)
        log = self._log(channel)
        events = []
        for draft in drafts:
            log.top += 1
            event = Event(channel, log.epoch, log.top, draft)
            log.entries.append((now, event))
            events.append(event)
        excess = len(log.entries) - self.retention.for_channel(channel).max_events
        for _ in range(excess):
            log.entries.popleft()
        if once is not None:
            self._records[(channel, once.scope, once.key)] = (now + once.ttl, Recorded(once.value, log.epoch,
                                                                                      events[0].offset))
        return Published(events)

    def read(self, channel: str, after: int, limit: int) -> HistoryPage:
        log = self._log(channel)
        entries = log.entries
        events: list[Event] = []
        if entries:
            start = max(0, after + 1 - entries[0][1].offset)
            for index in range(start, min(len(entries), start + limit)):
                events.append(entries[index][1])
        return HistoryPage(events, log.state())

    def state(self, channel: str) -> StreamState:
        return self._log(channel).state()

    def expire(self, now: float) -> int:
        dropped = 0
        for channel, log in self._logs.items():
            cutoff = now - self.retention.for_channel(channel).max_age
            while log.entries and log.entries[0][0] < cutoff:
                log.entries.popleft()
                dropped += 1
        self._records = {name: found for name, found in self._records.items() if found[0] > now}
        return dropped


class EmbeddedBroker(Broker):
    def __init__(self, store: Store) -> None:
        self.store = store
        self._on_events: OnEvents | None = None
        self._subscribed: set[str] = set()
        self._expiry: asyncio.Task[None] | None = None

    async def start(self, on_events: OnEvents) -> None:
        self._on_events = on_events
        self._expiry = asyncio.get_running_loop().create_task(self._expire_forever())

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(EXPIRE_INTERVAL)
            self.store.expire(time.time())

    async def publish(self, channel: str, drafts: Sequence[EventDraft], once: Once | None = None) -> Published:
        published = self.store.append(channel, drafts, time.time(), once)
        if published.events and channel in self._subscribed and self._on_events is not None:
            self._on_events(channel, published.events)
        return published

    async def history(self, channel: str, after: int, limit: int) -> HistoryPage:
        return self.store.read(channel, after, limit)

    async def state(self, channel: str) -> StreamState:
        return self.store.state(channel)

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)
