"""Deadlines that all lie the same delay after they start, served by one timer.

A connection's first request head has ``head_timeout`` seconds to arrive, and nearly every head
arrives in microseconds: a timer per connection would be made and cancelled at almost every
connect (on uvloop, about 2 us of a connect's CPU). The deadlines of one delay come due in the
order they were started, so one queue in that order and one timer for its front serve them all:
starting or ending a deadline is a dict insertion or removal.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class SharedDeadline(Generic[K]):
    """``expire(key)`` is called ``delay`` seconds after :meth:`start` of ``key``, unless
    :meth:`end` came first."""

    __slots__ = ("delay", "expire", "loop", "timer", "waiting")

    def __init__(self, delay: float, expire: Callable[[K], None]) -> None:
        self.delay = delay
        self.expire = expire
        self.waiting: OrderedDict[K, float] = OrderedDict()  # key -> when it expires, earliest first
        self.timer: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, key: K, loop: asyncio.AbstractEventLoop) -> None:
        when = loop.time() + self.delay
        self.waiting[key] = when
        if self.timer is None:
            self.loop = loop
            self.timer = loop.call_at(when, self._due)

    def end(self, key: K) -> None:
        """``key``'s deadline is over; the timer stays armed for whatever is left."""
        self.waiting.pop(key, None)

    def _due(self) -> None:
        self.timer = None
        loop = self.loop
        assert loop is not None
        now = loop.time()
        waiting = self.waiting
        while waiting:
            key, when = next(iter(waiting.items()))
            if when > now:
                if self.timer is None:  # (an expiry may have started a deadline, and armed it)
                    self.timer = loop.call_at(when, self._due)
                return
            del waiting[key]
            self.expire(key)
