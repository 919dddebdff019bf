"""Outgoing webhook throughput and latency against a real hub process.

* throughput: publish ``--events`` events in batches of 100 to a channel followed by ``--endpoints``
  endpoints that all point at one fast local receiver (it answers 200 at once); deliveries per second
  from the first publish to the last delivery received;
* latency: publish ``--samples`` single events at ``--rate`` per second; publish-to-delivery latency
  (the publisher's clock before the POST, the receiver's clock on arrival) p50 / p99 / max.

Usage: python benchmarks/webhooks.py [--events 5000] [--endpoints 1] [--samples 500] [--rate 100] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import httpx
import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.utils import HubProcess


class Receiver:
    """Answers 200 to every POST and notes when each event arrived (keyed by event id)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.changed = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                now = time.time()
                self.arrived.setdefault(orjson.loads(body)["metadata"]["event_id"], now)
                self.count += 1
                self.changed.set()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    async def until(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.001, deadline - time.monotonic()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace, data_dir: str) -> dict[str, object]:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    backend = ["--redis", args.redis] if args.redis else ["--data-dir", data_dir]
    hub = HubProcess([*backend, "--webhook-allow-network", "127.0.0.0/8",
                      "--webhook-max-concurrency", str(args.concurrency)])
    await asyncio.to_thread(hub.start)
    try:
        async with httpx.AsyncClient(base_url=hub.url, timeout=60) as client:
            for _ in range(args.endpoints):
                response = await client.post("/v1/webhooks/endpoints", json={"url": url, "channels": ["bench"]})
                response.raise_for_status()
            await client.post("/v1/channels/bench/events", json={"type": "warmup"})
            await receiver.until(args.endpoints, 30)

            # Throughput
            base = receiver.count
            total = args.events * args.endpoints
            started = time.perf_counter()
            for first in range(0, args.events, 100):
                batch = [{"type": "bench.throughput", "data": {"n": n}}
                         for n in range(first, min(args.events, first + 100))]
                (await client.post("/v1/channels/bench/events", json={"events": batch})).raise_for_status()
            published = time.perf_counter() - started
            await receiver.until(base + total, 300)
            elapsed = time.perf_counter() - started

            # Latency
            latencies = []
            interval = 1.0 / args.rate
            base = receiver.count
            sent: dict[str, float] = {}
            next_at = time.perf_counter()
            for n in range(args.samples):
                t0 = time.time()
                response = await client.post("/v1/channels/bench/events", json={"type": "bench.latency", "data": n})
                sent[response.json()["id"]] = t0
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            await receiver.until(base + args.samples * args.endpoints, 60)
            latencies = [(receiver.arrived[event_id] - t0) * 1000 for event_id, t0 in sent.items()]
    finally:
        hub.stop()
        server.close()
    return {
        "benchmark": "webhooks",
        "store": "redis" if args.redis else "sqlite",
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
        "endpoints": args.endpoints,
        "concurrency_per_endpoint": args.concurrency,
        "events": args.events,
        "deliveries": total,
        "publish_seconds": round(published, 3),
        "deliveries_per_second": round(total / elapsed, 1),
        "latency_samples": args.samples,
        "latency_rate_per_second": args.rate,
        "latency_ms_p50": round(statistics.median(latencies), 2),
        "latency_ms_p99": round(percentile(latencies, 0.99), 2),
        "latency_ms_max": round(max(latencies), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight per endpoint (the default is 4)")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--redis", help="keep the log and the webhook state in this Redis (an empty database)")
    with tempfile.TemporaryDirectory(prefix="pushhub-bench-") as data_dir:
        print(json.dumps(asyncio.run(run(parser.parse_args(), data_dir)), indent=2))


if __name__ == "__main__":
    main()
