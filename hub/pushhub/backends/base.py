"""The interface between a hub process and its backend.

A broker owns every channel's log and carries live events between processes. It assigns each
appended event its offset, and delivers the events of the channels this process subscribed to, in
offset order, to the callback given to :meth:`Broker.start`. The hub above it detects gaps by offset
continuity and fills them from :meth:`Broker.history`, so a broker's live delivery may be
at-most-once, but its log may not.

A publish may carry a :class:`Once`: the idempotency record of the request (an ``Idempotency-Key``
or an ingest delivery id). The broker then appends the events *and* stores the record in one
atomic step, or appends nothing and hands back the record stored before (:class:`Recorded`), so a
request retried after a crash at any point is in the log exactly once while its record lasts.

A :class:`Backend` is everything a hub keeps consistent with its log, chosen once from one URL
(:func:`pushhub.backends.create_backend`): the broker and the webhook delivery store, over one
shared connection that the backend opens before either starts and closes after both stop.

Beside its log a broker keeps the *event index*: each retained event is findable by id and by type
with its :class:`~pushhub.provenance.Origin` and the count of repeats answered from its record,
written in the same atomic step as the append and trimmed with the log. Brokers also list their
channels, by name pattern and in pages.
"""

from __future__ import annotations

import abc
import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ..events import Event, EventDraft
from ..provenance import Origin

if TYPE_CHECKING:
    from ..webhooks.store import DeliveryStore

OnEvents = Callable[[str, list[Event]], None]
OnBatch = Callable[[list[tuple[str, list[Event]]]], None]
"""Live events of several channels that were made together (one group commit), in order: what they
make is written to the sockets before it returns."""
Done = Callable[["Published | BaseException"], None]
"""Told, once, what a publish returned or raised (:meth:`Broker.publish_soon`); it must not raise."""


class StreamState(NamedTuple):
    epoch: str
    top: int  # the offset of the last event appended (0 if none ever was)
    earliest: int  # the offset of the oldest retained event (top + 1 if none is retained)


class HistoryPage(NamedTuple):
    events: list[Event]
    state: StreamState


LEGACY_SCOPE = "*"  # the scope of records kept before records had scopes: they match every scope


@dataclass(frozen=True)
class Once:
    """The idempotency record of one request, kept ``ttl`` seconds from the append.

    A record is found by its channel, ``scope`` (whose key it is: see :mod:`pushhub.idempotency`)
    and ``key``; ``value`` is opaque to the broker."""

    scope: str
    key: str
    value: bytes
    ttl: float


class Recorded(NamedTuple):
    """A stored record: its value and where the events of its request were appended."""

    value: bytes
    epoch: str
    first: int  # the offset of the request's first event


class Published(NamedTuple):
    events: list[Event]  # the events appended now; empty when the request was replayed
    replayed: Recorded | None = None


class Found(NamedTuple):
    """An event of the index: where it came from (``None`` if appended before the index existed) and
    how many repeats of its idempotent request were answered from its record."""

    event: Event
    origin: Origin | None
    repeats: int


class ChannelPage(NamedTuple):
    names: list[str]  # in name order
    next: str | None  # the ``after`` of the next page; None after the last


_publishing: set[asyncio.Task[Published]] = set()  # the tasks of Broker.publish_soon, kept until done


def _settled(done: Done, task: asyncio.Task[Published]) -> None:
    _publishing.discard(task)
    if task.cancelled():
        done(asyncio.CancelledError())
        return
    error = task.exception()
    done(task.result() if error is None else error)


class Broker(abc.ABC):
    @abc.abstractmethod
    async def start(self, on_events: OnEvents, on_batch: OnBatch | None = None) -> None:
        """Start handing live events over: each channel's to ``on_events``, or, where the broker has
        several channels' at once and ``on_batch`` is given, all of them to ``on_batch``."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, channel: str, drafts: Sequence[EventDraft], once: Once | None = None,
                      origin: Origin | None = None) -> Published:
        """Append ``drafts`` to ``channel`` atomically and in order, indexed with ``origin``; return
        them positioned.

        With ``once``: if a record with its channel, scope and key (or :data:`LEGACY_SCOPE`) is
        stored and unexpired, append nothing, count a repeat on the event it names and return it;
        otherwise store ``once`` in the same atomic step as the append.

        Returns only once the events are durably stored; raises :class:`~pushhub.errors.Unavailable`
        when they may not have been.
        """

    def publish_soon(self, channel: str, drafts: Sequence[EventDraft], once: Once | None, origin: Origin | None,
                     done: Done) -> None:
        """:meth:`publish`, answered through ``done`` instead of a coroutine's return (the lean publish
        route has no task to await it in). This one runs :meth:`publish` in a task."""
        task = asyncio.get_running_loop().create_task(self.publish(channel, drafts, once, origin))
        _publishing.add(task)
        task.add_done_callback(functools.partial(_settled, done))

    @abc.abstractmethod
    async def history(self, channel: str, after: int, limit: int) -> HistoryPage:
        """The events of the current epoch with offset > ``after``, oldest first, at most ``limit``."""

    @abc.abstractmethod
    async def state(self, channel: str) -> StreamState: ...

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Start delivering ``channel``'s live events to this process."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    @abc.abstractmethod
    async def find(self, event_id: str, limit: int) -> list[Found]:
        """The retained events with id ``event_id`` (ids are unique per publisher, not per hub)."""

    @abc.abstractmethod
    async def find_type(self, event_type: str, limit: int) -> list[Found]:
        """Retained events of type ``event_type`` on any channel, newest first."""

    @abc.abstractmethod
    async def channels(self, pattern: str, after: str, limit: int) -> ChannelPage:
        """Channel names matching ``pattern`` (``*`` matches any run of characters) after ``after``."""

    @abc.abstractmethod
    async def recent(self, channel: str, since: float) -> int:
        """How many retained events were appended to ``channel`` at or after ``since``."""

    async def healthy(self) -> bool:
        return True


class Backend:
    """A broker and a webhook delivery store that share one connection (``opened``/``closed``
    around both: a SQLite database, a Redis client, or nothing in memory)."""

    def __init__(self, broker: Broker, deliveries: DeliveryStore, *,
                 opened: Callable[[], Awaitable[None]] | None = None,
                 closed: Callable[[], Awaitable[None]] | None = None) -> None:
        self.broker = broker
        self.deliveries = deliveries
        self._opened = opened
        self._closed = closed

    async def open(self) -> None:
        if self._opened is not None:
            await self._opened()

    async def close(self) -> None:
        if self._closed is not None:
            await self._closed()
