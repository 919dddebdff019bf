"""The single-process broker: a log store on this machine, live fan-out inside this process.

A :class:`Store` keeps the logs and the idempotency records of their publishes; an append with a
:class:`~.base.Once` checks and stores its record in the same step (for SQLite, the same
transaction).

Group commit: the broker queues the publishes of one event-loop turn and hands them to the store
together (:meth:`Store.append_all`), which makes them in one atomic step, in order: SQLite commits
once for all of them. Each publisher is answered once that step is done and durable
(:meth:`Store.when_durable`: with SQLite's ``--fsync``, after the WAL's next fsync, which a thread
makes for all the groups committed meanwhile), the lean publish route from inside it
(:meth:`EmbeddedBroker.publish_soon`); if it fails, all of them get the error and none of their
events is stored.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..channels import compile_patterns
from ..cursor import new_epoch
from ..events import Event, EventDraft
from ..provenance import Origin
from ..retention import RetentionPolicy
from ..tasks import cancel_and_wait
from .base import (
    LEGACY_SCOPE,
    Broker,
    ChannelPage,
    Done,
    Found,
    HistoryPage,
    OnBatch,
    Once,
    OnEvents,
    Published,
    Recorded,
    StreamState,
)

EXPIRE_INTERVAL = 30.0
BUSY_RETRY = 0.001  # seconds before a group commit the store was busy for is tried again


Durable = Callable[[Exception | None], None]  # called with None once durable, or with why it may not be


class Append(NamedTuple):
    channel: str
    drafts: Sequence[EventDraft]
    once: Once | None = None
    origin: Origin | None = None


class Store(abc.ABC):
    """A synchronous log store. Calls are short and made from the event loop's thread."""

    def __init__(self, retention: RetentionPolicy) -> None:
        self.retention = retention

    @abc.abstractmethod
    def append_all(self, appends: Sequence[Append], now: float) -> list[Published]:
        """Make ``appends`` in order, in one atomic step: each appends its drafts, or with ``once``
        returns the record already stored (see :meth:`Broker.publish`)."""

    def append(self, channel: str, drafts: Sequence[EventDraft], now: float, once: Once | None = None,
               origin: Origin | None = None) -> Published:
        return self.append_all([Append(channel, drafts, once, origin)], now)[0]

    def when_durable(self, callback: Durable) -> None:
        """Call ``callback`` (on the event loop) once the appends made until now are as durable as the
        store makes them, with None, or with the error that says they may not be: this one at once."""
        callback(None)

    def busy(self) -> bool:
        """Whether an append would wait now (for a moment, not for the next append to be made): the
        group commit is made a little later instead, so that the event loop does not wait."""
        return False

    @abc.abstractmethod
    def read(self, channel: str, after: int, limit: int) -> HistoryPage: ...

    @abc.abstractmethod
    def state(self, channel: str) -> StreamState: ...

    @abc.abstractmethod
    def expire(self, now: float) -> int:
        """Drop events older than their channel's age limit, and expired idempotency records;
        return how many events were dropped."""

    @abc.abstractmethod
    def find(self, event_id: str, limit: int) -> list[Found]: ...

    @abc.abstractmethod
    def find_type(self, event_type: str, limit: int) -> list[Found]: ...

    @abc.abstractmethod
    def channels(self, pattern: str, after: str, limit: int) -> ChannelPage: ...

    @abc.abstractmethod
    def recent(self, channel: str, since: float) -> int: ...


class _MemoryLog:
    """One channel's retained events with their index: ``ids`` (event id → offset) and ``repeats``
    (offset → repeats answered from its record) lose an event when the log drops it."""

    __slots__ = ("entries", "epoch", "ids", "repeats", "top")

    def __init__(self) -> None:
        self.epoch = new_epoch()
        self.top = 0
        self.entries: deque[tuple[float, Event, Origin | None]] = deque()
        self.ids: dict[str, int] = {}
        self.repeats: dict[int, int] = {}

    def state(self) -> StreamState:
        earliest = self.entries[0][1].offset if self.entries else self.top + 1
        return StreamState(self.epoch, self.top, earliest)

    def drop_oldest(self) -> None:
        event = self.entries.popleft()[1]
        if self.ids.get(event.id) == event.offset:
            del self.ids[event.id]
        if self.repeats:
            self.repeats.pop(event.offset, None)

    def found(self, offset: int) -> Found | None:
        if not self.entries or offset < self.entries[0][1].offset:
            return None
        _, event, origin = self.entries[offset - self.entries[0][1].offset]
        return Found(event, origin, self.repeats.get(offset, 0))


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

    def append_all(self, appends: Sequence[Append], now: float) -> list[Published]:
        return [self._append(channel, drafts, now, once, origin) for channel, drafts, once, origin in appends]

    def _append(self, channel: str, drafts: Sequence[EventDraft], now: float, once: Once | None,
                origin: Origin | None) -> Published:
        if once is not None:
            recorded = self._recorded(channel, once, now)
            if recorded is not None:
                log = self._logs.get(channel)
                if log is not None and log.epoch == recorded.epoch:
                    log.repeats[recorded.first] = log.repeats.get(recorded.first, 0) + 1
                return Published([], recorded)
        log = self._log(channel)
        events = []
        entries, ids = log.entries, log.ids
        for draft in drafts:
            log.top += 1
            event = Event(channel, log.epoch, log.top, draft)
            entries.append((now, event, origin))
            ids[draft.id] = log.top
            events.append(event)
        excess = len(entries) - self.retention.for_channel(channel).max_events
        for _ in range(excess):
            log.drop_oldest()
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
                log.drop_oldest()
                dropped += 1
        self._records = {name: found for name, found in self._records.items() if found[0] > now}
        return dropped

    def find(self, event_id: str, limit: int) -> list[Found]:
        found = []
        for log in self._logs.values():
            offset = log.ids.get(event_id)
            hit = None if offset is None else log.found(offset)
            if hit is not None:
                found.append(hit)
        return found[:limit]

    def find_type(self, event_type: str, limit: int) -> list[Found]:
        hits = [(at, Found(event, origin, log.repeats.get(event.offset, 0)))
                for log in self._logs.values() for at, event, origin in log.entries if event.type == event_type]
        hits.sort(key=lambda hit: (hit[0], hit[1].event.offset), reverse=True)
        return [found for _, found in hits[:limit]]

    def channels(self, pattern: str, after: str, limit: int) -> ChannelPage:
        match = compile_patterns([pattern], kind="channel")
        names = sorted(name for name in self._logs if name > after and (match is None or match(name)))
        return ChannelPage(names[:limit], names[limit - 1] if len(names) > limit else None)

    def recent(self, channel: str, since: float) -> int:
        log = self._logs.get(channel)
        count = 0
        for at, _, _ in reversed(log.entries if log is not None else ()):
            if at < since:
                break
            count += 1
        return count


def _settle(future: asyncio.Future[Published], result: Published | BaseException) -> None:
    if future.done():  # its publisher went away
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
        future.exception()  # retrieved: a publisher that goes away does not warn
    else:
        future.set_result(result)


def _each(on_events: OnEvents, batch: list[tuple[str, list[Event]]]) -> None:
    for channel, events in batch:
        on_events(channel, events)


class EmbeddedBroker(Broker):
    def __init__(self, store: Store) -> None:
        self.store = store
        self._on_batch: OnBatch | None = None
        self._subscribed: set[str] = set()
        self._expiry: asyncio.Task[None] | None = None
        self._queued: list[tuple[Append, Done]] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # once started (asking for it costs a getpid())

    async def start(self, on_events: OnEvents, on_batch: OnBatch | None = None) -> None:
        """A group commit's events go to ``on_batch`` together (else to ``on_events``, channel by channel)."""
        self._on_batch = on_batch or functools.partial(_each, on_events)
        self._loop = asyncio.get_running_loop()
        self._expiry = self._loop.create_task(self._expire_forever())

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop or asyncio.get_running_loop()

    async def close(self) -> None:
        await cancel_and_wait([self._expiry])

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(EXPIRE_INTERVAL)
            self.store.expire(time.time())

    async def publish(self, channel: str, drafts: Sequence[EventDraft], once: Once | None = None,
                      origin: Origin | None = None) -> Published:
        future: asyncio.Future[Published] = self._running_loop().create_future()
        self.publish_soon(channel, drafts, once, origin, functools.partial(_settle, future))
        return await future

    def publish_soon(self, channel: str, drafts: Sequence[EventDraft], once: Once | None, origin: Origin | None,
                     done: Done) -> None:
        """Queued for the group commit of this loop turn; ``done`` is called from it."""
        self._queued.append((Append(channel, drafts, once, origin), done))
        if len(self._queued) == 1:
            self._running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        """Store every publish queued in this loop turn at once; once that is durable, answer each and
        fan the events out."""
        if self.store.busy():  # the publishes queued until then commit together
            self._running_loop().call_later(BUSY_RETRY, self._commit)
            return
        queued, self._queued = self._queued, []
        try:
            results = self.store.append_all([append for append, _ in queued], time.time())
        except Exception as exc:
            for _, done in queued:
                done(exc)
            return
        self.store.when_durable(functools.partial(self._committed, queued, results))

    def _committed(self, queued: list[tuple[Append, Done]], results: list[Published], error: Exception | None) -> None:
        """Answer each publish of a group commit (durable, or ``error``), then fan its events out."""
        if error is not None:
            for _, done in queued:
                done(error)
            return
        for (_, done), published in zip(queued, results, strict=True):
            done(published)
        if self._on_batch is not None:
            subscribed = self._subscribed
            batch = [(append.channel, published.events) for (append, _), published in zip(queued, results, strict=True)
                     if published.events and append.channel in subscribed]
            if batch:
                self._on_batch(batch)

    async def history(self, channel: str, after: int, limit: int) -> HistoryPage:
        return self.store.read(channel, after, limit)

    async def state(self, channel: str) -> StreamState:
        return self.store.state(channel)

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def find(self, event_id: str, limit: int) -> list[Found]:
        return self.store.find(event_id, limit)

    async def find_type(self, event_type: str, limit: int) -> list[Found]:
        return self.store.find_type(event_type, limit)

    async def channels(self, pattern: str, after: str, limit: int) -> ChannelPage:
        return self.store.channels(pattern, after, limit)

    async def recent(self, channel: str, since: float) -> int:
        return self.store.recent(channel, since)
