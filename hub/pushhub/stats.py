"""Counters of what the hub does, sampled once a second for throughput over time.

The hot path only adds to plain integers; turning them into rates, JSON or the Prometheus text
format happens when someone asks. What cannot be a count (durations, outcomes with labels) goes to
``Stats.observer``, which does nothing unless :class:`pushhub.metrics.Metrics` replaces it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

HISTORY_SECONDS = 300


class Observer:
    """Receives what the hub measures besides counts; this one ignores it."""

    def publish(self, count: int, seconds: float) -> None:
        """A publish call appended ``count`` events in ``seconds``."""

    def delivery(self, event_time: str, now: float) -> None:
        """A fan-out batch whose last event has ``event_time`` (RFC 3339) was written at ``now``."""

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        """An outgoing webhook attempt ended with ``outcome`` after ``seconds``."""

    def ingested(self, source: str, result: str, reason: str = "") -> None:
        """An ingest webhook was ``accepted``, a ``duplicate`` or ``rejected`` (``reason``: the error code)."""


class Stats:
    __slots__ = ("delivered", "observer", "published", "resets", "samples", "slow_consumers", "started")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.published = 0
        self.delivered = 0
        self.resets = 0
        self.slow_consumers = 0
        self.started = clock()
        self.observer = Observer()
        self.samples: deque[tuple[float, int, int]] = deque(maxlen=HISTORY_SECONDS + 1)

    def sample(self, now: float) -> None:
        self.samples.append((now, self.published, self.delivered))

    def rates(self, after: float | None = None) -> list[dict[str, float]]:
        """Per-second published and delivered rates between consecutive samples, oldest first; only
        those sampled later than ``after`` when given (a live view asks for what it has not seen)."""
        out = []
        previous = None
        for sample in self.samples:
            if previous is not None and sample[0] > previous[0] and (after is None or round(sample[0], 3) > after):
                span = sample[0] - previous[0]
                out.append({"time": round(sample[0], 3),
                            "published": (sample[1] - previous[1]) / span,
                            "delivered": (sample[2] - previous[2]) / span})
            previous = sample
        return out

    def snapshot(self, gauges: dict[str, int], after: float | None = None) -> dict[str, Any]:
        return {"published": self.published, "delivered": self.delivered, "resets": self.resets,
                "slow_consumers": self.slow_consumers, **gauges, "rates": self.rates(after)}
