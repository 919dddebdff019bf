"""Counters of what the hub does, sampled once a second for throughput over time.

The hot path only adds to plain integers; turning them into rates, JSON or the Prometheus text
format happens when someone asks.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

HISTORY_SECONDS = 300


class Stats:
    __slots__ = ("delivered", "published", "resets", "samples", "slow_consumers", "started")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.published = 0
        self.delivered = 0
        self.resets = 0
        self.slow_consumers = 0
        self.started = clock()
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


class StatsCollector(Collector):
    """Exposes :class:`Stats` and the current gauges in the Prometheus format."""

    def __init__(self, stats: Stats, gauges: Callable[[], dict[str, int]]) -> None:
        self.stats = stats
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        yield CounterMetricFamily("pushhub_events_published", "Events appended to a log", value=stats.published)
        yield CounterMetricFamily("pushhub_deliveries", "Events written to subscriber connections",
                                  value=stats.delivered)
        yield CounterMetricFamily("pushhub_resets", "Reset notices sent to subscribers", value=stats.resets)
        yield CounterMetricFamily("pushhub_slow_consumers", "Connections closed for reading too slowly",
                                  value=stats.slow_consumers)
        for name, value in self.gauges().items():
            yield GaugeMetricFamily(f"pushhub_{name}", f"Current number of {name.replace('_', ' ')}", value=value)
