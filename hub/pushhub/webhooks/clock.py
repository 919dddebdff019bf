"""The dispatcher's sense of time, injected so tests can run a day-long retry schedule in seconds."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""

    async def sleep_until(self, when: float) -> None:
        """Until :meth:`now` reaches ``when`` (a deadline, not a delay, so that a wait computed a moment
        ago does not drift)."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - time.time()))
