"""Prometheus metrics, correct with ``--workers N``.

With more than one worker the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before it starts them, so prometheus_client keeps every worker's values in files there and any
worker's ``/metrics`` adds them all up (its documented multi-process mode). One process alone keeps
them in memory.

The hot paths stay cheap (``python -m benchmarks.metrics_cost`` measures them). Fan-out only adds
to the plain integers of :class:`~pushhub.stats.Stats`; :meth:`Metrics.sync` moves them into the
counters once a second and at every scrape (so another worker's share of the deliveries is at most
a second old). A process alone counts publishes and HTTP answers as plain integers too, which the
scrape moves into the counters first; a worker, whose counters another worker's scrape reads,
adds each one to its counter at once. What cannot be added up later is one histogram sample per
publish call, and a delivery latency sample at most once a millisecond.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .auth import bearer
from .errors import PushHubError
from .metrics_access import MetricsAccess
from .stats import Observer, Stats

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WEBHOOK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BACKLOG_CAP = 1000
DELIVERY_SAMPLE_INTERVAL = 0.001  # seconds between two delivery latency samples, at least
Endpoint = Callable[[Request], Awaitable[Response]]


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics(Observer):
    def __init__(self, stats: Stats, gauges: Callable[[], dict[str, int]], access: MetricsAccess | None = None,
                 backlog: Callable[[], Awaitable[dict[str, int]]] | None = None) -> None:
        """``gauges`` gives the connection and channel counts; ``access`` decides who may scrape;
        ``backlog`` gives the pending deliveries of each webhook endpoint (asked at each scrape)."""
        self.stats = stats
        self.gauges = gauges
        self.access = access
        self.backlog = backlog
        self._synced = (0, 0, 0)
        self._published = 0  # publishes and HTTP answers not in their counters yet (one process alone)
        self._answered: dict[tuple[str, str, int], int] = {}
        self._children: dict[tuple[str, str, int], Any] = {}  # labels() costs four times an inc() of its child
        self._last_delivery_sample = float("-inf")
        self.registry = CollectorRegistry(auto_describe=False)
        self.multiprocess = multiprocess()
        if self.multiprocess:  # another worker's scrape reads the counters: no count may wait for ours
            self.publish = self._publish_now  # type: ignore[method-assign]
        made: list[Counter | Gauge | Histogram] = []

        def counter(name: str, text: str, labels: tuple[str, ...] = ()) -> Counter:
            made.append(Counter(name, text, labels, registry=None))
            return made[-1]  # type: ignore[return-value]

        def gauge(name: str, text: str, labels: tuple[str, ...] = (),
                  mode: Literal["livesum", "mostrecent"] = "livesum") -> Gauge:
            made.append(Gauge(name, text, labels, registry=None, multiprocess_mode=mode))
            return made[-1]  # type: ignore[return-value]

        def histogram(name: str, text: str, buckets: tuple[float, ...]) -> Histogram:
            made.append(Histogram(name, text, registry=None, buckets=buckets))
            return made[-1]  # type: ignore[return-value]

        self.published = counter("pushhub_events_published", "Events appended to a log")
        self.delivered = counter("pushhub_deliveries", "Events written to subscriber connections")
        self.resets = counter("pushhub_resets", "Reset notices sent to subscribers")
        self.slow_consumers = counter("pushhub_slow_consumers", "Connections closed for reading too slowly")
        self.connections = gauge("pushhub_connections", "Open subscriber connections", ("transport",))
        self.channels = gauge("pushhub_active_channels", "Channels with a subscriber in a process (summed)")
        self.publish_seconds = histogram("pushhub_publish_duration_seconds",
                                         "Time to append a publish request's events to the log", LATENCY_BUCKETS)
        self.delivery_seconds = histogram(
            "pushhub_delivery_latency_seconds",
            "From an event's time (the hub's clock at publish unless the publisher set it) to its write to "
            "subscriber connections, sampled at most once a millisecond", LATENCY_BUCKETS)
        self.http_requests = counter("pushhub_http_requests", "HTTP requests answered, by route and status",
                                     ("route", "method", "status"))
        self.ingest = counter("pushhub_ingest_requests", "Ingest webhooks by source and result "
                              "(accepted, duplicate, rejected) and the error code of a rejection",
                              ("source", "result", "reason"))
        self.webhook_attempts = counter("pushhub_webhook_attempts", "Outgoing webhook attempts by outcome",
                                        ("outcome",))
        self._attempt_counts: dict[str, Any] = {}  # outcome -> its labelled counter (labels() costs 1.5 us)
        self.webhook_seconds = histogram("pushhub_webhook_attempt_duration_seconds",
                                         "Duration of outgoing webhook attempts", WEBHOOK_BUCKETS)
        self.webhook_backlog = gauge("pushhub_webhook_backlog",
                                     f"Pending deliveries of each endpoint (counted up to {BACKLOG_CAP})",
                                     ("endpoint",), mode="mostrecent")
        stats.observer = self
        if self.multiprocess:
            prometheus_multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            for metric in made:
                self.registry.register(metric)

    def sync(self) -> None:
        """Move what the hot paths counted into the counters; set the gauges."""
        self._flush()
        stats = self.stats
        now = (stats.delivered, stats.resets, stats.slow_consumers)
        for metric, value, before in zip((self.delivered, self.resets, self.slow_consumers),
                                         now, self._synced, strict=True):
            if value > before:
                metric.inc(value - before)
        self._synced = now
        gauges = self.gauges()
        self.connections.labels("sse").set(gauges["sse_connections"])
        self.connections.labels("websocket").set(gauges["ws_connections"])
        self.channels.set(gauges["active_channels"])

    def _flush(self) -> None:
        """Move the publishes and HTTP answers counted as plain integers into their counters."""
        if self._published:
            self.published.inc(self._published)
            self._published = 0
        if self._answered:
            children = self._children
            for key, count in self._answered.items():
                child = children.get(key)
                if child is None:
                    child = children[key] = self.http_requests.labels(key[0], key[1], str(key[2]))
                child.inc(count)
            self._answered = {}

    def publish(self, count: int, seconds: float) -> None:
        self._published += count
        self.publish_seconds.observe(seconds)

    def _publish_now(self, count: int, seconds: float) -> None:
        self.published.inc(count)
        self.publish_seconds.observe(seconds)

    def delivery(self, event_time: str, now: float) -> None:
        """A latency sample, at most one a millisecond: fan-out to many channels of one subscriber
        each would otherwise pay a sample (1.4 µs) per delivery (about 5 µs)."""
        if 0.0 <= now - self._last_delivery_sample < DELIVERY_SAMPLE_INTERVAL:
            return  # (a clock set back does not stop the samples)
        self._last_delivery_sample = now
        try:
            sent = datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return
        self.delivery_seconds.observe(max(0.0, now - sent))

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        count = self._attempt_counts.get(outcome)
        if count is None:
            count = self._attempt_counts[outcome] = self.webhook_attempts.labels(outcome)
        count.inc()
        self.webhook_seconds.observe(seconds)

    def ingested(self, source: str, result: str, reason: str = "") -> None:
        self.ingest.labels(source, result, reason).inc()

    def answers(self, path: str) -> Callable[[str, int], None]:
        """Counts one answer (method, status) of the route ``path`` in ``pushhub_http_requests_total``."""

        def count(method: str, status: int) -> None:
            key = (path, method, status)
            answered = self._answered
            answered[key] = answered.get(key, 0) + 1
            if self.multiprocess:
                self._flush()

        return count

    def counted(self, route: Route) -> Route:
        """``route`` with its answers counted in ``pushhub_http_requests_total``."""
        endpoint: Endpoint = route.endpoint
        count = self.answers(route.path)

        async def counted(request: Request) -> Response:
            try:
                response = await endpoint(request)
            except PushHubError as exc:
                count(request.method, exc.status)
                raise
            except Exception:
                count(request.method, 500)
                raise
            count(request.method, response.status_code)
            return response

        return Route(route.path, counted, methods=list(route.methods or ()), name=route.name)

    def exposition(self) -> bytes:
        self.sync()
        return generate_latest(self.registry)

    async def endpoint(self, request: Request) -> Response:
        if self.access is not None:
            self.access.check(bearer(request.headers.get("authorization")),
                              request.client.host if request.client else None)
        if self.backlog is not None:
            for endpoint_id, pending in (await self.backlog()).items():
                self.webhook_backlog.labels(endpoint_id).set(pending)
        return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay in the totals)."""
    if multiprocess():
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
