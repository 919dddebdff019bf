"""/metrics as an operator reads it: totals over all workers, and every metric the README lists."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pushhub.metrics import Metrics
from pushhub.stats import Stats

from .redis_servers import RedisServer
from .utils import TIMEOUT, HubProcess, sse_stream, ws_client
from .webhook_utils import eventually, receiver

README = Path(__file__).resolve().parent.parent / "README.md"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    # A new connection each time, so SO_REUSEPORT spreads the scrapes over the workers.
    with httpx.Client(timeout=TIMEOUT) as client:
        answer = client.get(url + "/metrics", headers={"connection": "close"})
    assert answer.status_code == 200
    return samples(answer.text)


def test_every_scrape_sees_the_totals_of_all_workers(tmp_path: Path, redis_server: RedisServer) -> None:
    hub = HubProcess(["--workers", "2", "--redis", redis_server.fresh_url()], log_path=str(tmp_path / "hub.log"))
    hub.start()
    try:
        for n in range(20):
            with httpx.Client(timeout=TIMEOUT) as client:
                answer = client.post(f"{hub.url}/v1/channels/totals/events", json={"type": "t", "data": n},
                                     headers={"connection": "close"})
                assert answer.status_code == 202
        published = [scrape(hub.url)[("pushhub_events_published_total", ())] for _ in range(6)]
        assert published == [20.0] * 6
        requests = [scrape(hub.url)[("pushhub_http_requests_total", (
            ("method", "POST"), ("route", "/v1/channels/{channel}/events"), ("status", "202")))] for _ in range(4)]
        assert requests == [20.0] * 4
        histogram = scrape(hub.url)[("pushhub_publish_duration_seconds_count", ())]
        assert histogram == 20.0
    finally:
        hub.stop()


async def test_connections_latency_ingest_and_webhook_metrics(tmp_path: Path) -> None:
    async with receiver() as hook:
        hub = HubProcess(["--data-dir", str(tmp_path), "--webhook-allow-network", "127.0.0.0/8"]).start()
        try:
            async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
                created = await client.post("/v1/webhooks/endpoints", json={"url": hook.url})
                assert created.status_code == 201
                async with sse_stream(hub.url, ["watched"]) as stream, ws_client(hub.ws_url) as ws:
                    await ws.subscribe("watched")
                    assert (await client.post("/v1/channels/watched/events", json={"type": "t"})).status_code == 202
                    await stream.next()
                    await ws.recv()
                    live = samples((await client.get("/metrics")).text)
                assert (await client.post("/v1/ingest/nowhere", content=b"{}")).status_code == 404
                await eventually(lambda: len(hook.requests) == 1)

                async def attempts() -> float:
                    return samples((await client.get("/metrics")).text).get(
                        ("pushhub_webhook_attempts_total", (("outcome", "success"),)), 0.0)

                await eventually(attempts, lambda n: n == 1.0)
                after = samples((await client.get("/metrics")).text)
        finally:
            hub.stop()
    assert live[("pushhub_connections", (("transport", "sse"),))] == 1.0
    assert live[("pushhub_connections", (("transport", "websocket"),))] == 1.0
    assert live[("pushhub_deliveries_total", ())] == 2.0
    assert live[("pushhub_delivery_latency_seconds_count", ())] >= 1.0
    assert after[("pushhub_ingest_requests_total", (("reason", "unknown_source"), ("result", "rejected"),
                                                     ("source", "(unknown)")))] == 1.0
    assert after[("pushhub_webhook_attempt_duration_seconds_count", ())] == 1.0
    assert after[("pushhub_connections", (("transport", "sse"),))] == 0.0


def metric_names() -> set[str]:
    stats = Stats()
    metrics = Metrics(stats, lambda: {"sse_connections": 0, "ws_connections": 0, "active_channels": 0})
    return {family.name + ("_total" if family.type == "counter" else "")
            for family in metrics.registry.collect()}


def test_the_readme_lists_every_metric() -> None:
    names = metric_names()
    assert len(names) >= 12
    documented = set(re.findall(r"`(pushhub_[a-z_]+)`", README.read_text()))
    assert sorted(names - documented) == []


def test_counts_move_into_the_counters_at_the_scrape_and_delivery_latency_is_sampled() -> None:
    stats = Stats()
    metrics = Metrics(stats, lambda: {"sse_connections": 2, "ws_connections": 1, "active_channels": 1})
    stats.observer.publish(3, 0.002)
    stats.observer.publish(1, 0.002)
    stats.delivered += 5
    unsynced = samples(generate_latest(metrics.registry).decode())  # the counters themselves, before a scrape
    assert unsynced[("pushhub_events_published_total", ())] == 0.0
    assert unsynced[("pushhub_publish_duration_seconds_count", ())] == 2.0
    stats.observer.publish(3, 0.002)
    stats.observer.delivery("2026-12-01T18:00:00Z", 1_796_148_000.5)
    stats.observer.delivery("2026-12-01T18:00:00Z", 1_796_148_000.5009)  # within the millisecond: not sampled
    stats.observer.delivery("2026-12-01T18:00:00Z", 1_796_148_000.502)
    before = samples(metrics.exposition().decode())
    assert before[("pushhub_delivery_latency_seconds_count", ())] == 2.0
    assert before[("pushhub_delivery_latency_seconds_sum", ())] == pytest.approx(1.002)
    assert before[("pushhub_events_published_total", ())] == 7.0
    assert before[("pushhub_deliveries_total", ())] == 5.0
    assert before[("pushhub_connections", (("transport", "sse"),))] == 2.0
