"""The interface between a hub process and its backend.

A broker owns every channel's log and carries live events between processes. It assigns each
appended event its offset, and delivers the events of the channels this process subscribed to, in
offset order, to the callback given to :meth:`Broker.start`. The hub above it detects gaps by offset
continuity and fills them from :meth:`Broker.history`, so a broker's live delivery may be
at-most-once, but its log may not.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..events import Event, EventDraft

OnEvents = Callable[[str, list[Event]], None]


class StreamState(NamedTuple):
    epoch: str
    top: int  # the offset of the last event appended (0 if none ever was)
    earliest: int  # the offset of the oldest retained event (top + 1 if none is retained)


class HistoryPage(NamedTuple):
    events: list[Event]
    state: StreamState


class Broker(abc.ABC):
    @abc.abstractmethod
    async def start(self, on_events: OnEvents) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, channel: str, drafts: Sequence[EventDraft]) -> list[Event]:
        """Append ``drafts`` to ``channel`` atomically and in order; return them positioned.

        Returns only once the events are durably stored; raises :class:`~pushhub.errors.Unavailable`
        when they may not have been.
        """

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

    async def healthy(self) -> bool:
        return True
