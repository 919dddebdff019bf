"""Outgoing webhooks against a real hub process (SQLite by default), beside the bare HTTP client floor.

    python -m benchmarks.webhooks                      # every scenario below, one after the other
    python -m benchmarks.webhooks --scenario throughput --events 20000
    python -m benchmarks.webhooks --scenario isolation --endpoints 100
    python -m benchmarks.webhooks --scenario latency --rate 1000 --samples 5000

* ``throughput``: ``--events`` events published in batches of 100 to a channel one endpoint follows,
  its receiver answering 200 at once; deliveries per second from the first publish to the last
  delivery. In the same run, interleaved, ``benchmarks.http_client`` measures aiohttp and httpx bare
  from one process against the same receiver (``floor_*``), and the ratio is reported.
* ``isolation``: ``--endpoints`` endpoints follow the channel, each with its own receiver path;
  once all of them answer, and once with one of them pointing at a receiver that accepts the
  connection and never answers (every attempt runs into the timeout), ``--rounds`` such pairs, the
  order alternating. Reports each healthy endpoint's deliveries per second (min and median) in each
  run, and each one's rate with the hanging endpoint over the median rate without it in the same
  pair (``ratio_min``, ``ratio_median``, and their medians over the pairs).
* ``latency``: single events published at ``--rate`` per second (each POST in flight on its own);
  publish-to-delivery latency (the publisher's clock before the POST, the receiver's on arrival, one
  machine) p50 / p99 / max, and the hub's CPU time per event (its publish and its delivery).

The receiver is a plain asyncio protocol on uvloop in this process. Prints one JSON line per
scenario and appends it to ``benchmarks/results/webhooks.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any, cast

import aiohttp
import orjson
import uvloop

from benchmarks.loadgen import ROOT, Hub, machine_facts, save_result

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class Receiver:
    """Counts the webhooks each path got, and when each event first arrived."""

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = defaultdict(int)
        self.arrived: dict[str, float] = {}
        self.total = 0
        self.last = 0.0  # time.monotonic() of the latest arrival (comparable across processes)
        self.watch: tuple[int, asyncio.Future[None]] | None = None
        self.done_at: dict[bytes, float] = {}  # path -> when it reached its expected count
        self.expect: dict[bytes, int] = {}
        self.all_done: asyncio.Future[None] | None = None  # set once every expected path got its count

    def got(self, path: bytes, body: bytes) -> None:
        now = time.time()
        self.last = time.monotonic()
        event_id = orjson.loads(body)["metadata"]["event_id"]
        self.arrived.setdefault(event_id, now)
        self.total += 1
        count = self.counts[path] = self.counts[path] + 1
        if path not in self.done_at and count >= self.expect.get(path, count + 1):
            self.done_at[path] = now
            if len(self.done_at) == len(self.expect) and self.all_done is not None and not self.all_done.done():
                self.all_done.set_result(None)
        if self.watch is not None and self.total >= self.watch[0] and not self.watch[1].done():
            self.watch[1].set_result(None)

    async def until(self, total: int, timeout: float) -> None:
        if self.total >= total:
            return
        future = asyncio.get_running_loop().create_future()
        self.watch = (total, future)
        await asyncio.wait_for(future, timeout)

    def expect_each(self, paths: list[bytes], count: int) -> asyncio.Future[None]:
        """From now on, note when each of ``paths`` has got ``count`` webhooks (duplicates included)."""
        self.counts.clear()
        self.done_at.clear()
        self.expect = dict.fromkeys(paths, count)
        self.all_done = asyncio.get_running_loop().create_future()
        return self.all_done


class ReceiverProtocol(asyncio.Protocol):
    def __init__(self, receiver: Receiver, answer: bool = True) -> None:
        self.receiver = receiver
        self.answer = answer
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            if not self.answer:
                continue
            self.receiver.got(head.split(b" ", 2)[1], body)
            assert self.transport is not None
            self.transport.write(OK)


async def listen(receiver: Receiver, answer: bool = True) -> tuple[asyncio.Server, str]:
    server = await asyncio.get_running_loop().create_server(lambda: ReceiverProtocol(receiver, answer),
                                                            "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


class Publisher:
    def __init__(self, session: aiohttp.ClientSession, hub: Hub, channel: str) -> None:
        self.session = session
        self.url = f"{hub.url}/v1/channels/{channel}/events"

    async def post(self, body: Any) -> Any:
        async with self.session.post(self.url, json=body) as response:
            assert response.status == 202, (response.status, await response.text())
            return await response.json()

    async def batches(self, events: int) -> float:
        started = time.perf_counter()
        for first in range(0, events, 100):
            await self.post({"events": [{"type": "bench.throughput", "data": {"n": n}}
                                        for n in range(first, min(events, first + 100))]})
        return time.perf_counter() - started


async def add_endpoint(session: aiohttp.ClientSession, hub: Hub, url: str, channel: str) -> str:
    async with session.post(f"{hub.url}/v1/webhooks/endpoints", json={"url": url, "channels": [channel]}) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["id"])


def start_hub(args: argparse.Namespace, *extra: str) -> Hub:
    hub_args = ["--webhook-allow-network", "127.0.0.0/8", "--webhook-max-concurrency", str(args.concurrency),
                *extra]
    if args.sender:
        hub_args += ["--webhook-sender", args.sender]
    if args.redis:
        hub_args += ["--redis", args.redis]
    hub_args += args.hub_arg
    return Hub(storage="memory" if args.memory else "sqlite", extra_args=hub_args).start()


async def floor(client: str, url: str, requests: int, concurrency: int) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.http_client", "--client", client, "--url", url,
        "--requests", str(requests), "--concurrency", str(concurrency), cwd=ROOT, stdout=subprocess.PIPE)
    out, _ = await process.communicate()
    assert process.returncode == 0, f"benchmarks.http_client --client {client} failed"
    return dict(json.loads(out))


def cpu(hub: Hub) -> float:
    user, system = hub.cpu_seconds() or (0.0, 0.0)
    return user + system


async def throughput(args: argparse.Namespace, receiver: Receiver, base: str) -> dict[str, Any]:
    figures: dict[str, list[float]] = defaultdict(list)
    async with aiohttp.ClientSession() as session:
        for _ in range(args.rounds):
            for client in args.floor:
                result = await floor(client, f"{base}/floor", args.events, args.concurrency)
                figures[f"floor_{client}_per_second"].append(result["per_second"])
                figures[f"floor_{client}_cpu_us_per_request"].append(result["cpu_us_per_request"])
            hub = start_hub(args)
            try:
                publisher = Publisher(session, hub, "bench")
                await add_endpoint(session, hub, f"{base}/hook", "bench")
                await publisher.post({"type": "warmup"})
                await receiver.until(receiver.total + 1, 30)
                total = receiver.total + args.events
                cpu_before = cpu(hub)
                started = time.perf_counter()
                await publisher.batches(args.events)
                await receiver.until(total, 600)
                elapsed = time.perf_counter() - started
                figures["hub_per_second"].append(args.events / elapsed)
                figures["hub_cpu_us_per_delivery"].append((cpu(hub) - cpu_before) / args.events * 1e6)
            finally:
                hub.stop()
    result: dict[str, Any] = {"scenario": "throughput", "events": args.events, "rounds": args.rounds,
                              "concurrency_per_endpoint": args.concurrency}
    for name, values in figures.items():
        result[name] = [round(v, 1) for v in values]
        result[name.replace("_per_second", "") + "_median"] = round(statistics.median(values), 1)
    for client in args.floor:
        result[f"ratio_to_{client}"] = round(statistics.median(figures["hub_per_second"])
                                             / statistics.median(figures[f"floor_{client}_per_second"]), 3)
    return result


async def isolation_run(args: argparse.Namespace, receiver: Receiver, base: str, silent: str | None) -> list[float]:
    """Each healthy endpoint's deliveries/s in one hub run (with the hanging endpoint when ``silent``)."""
    healthy = args.endpoints - 1
    async with aiohttp.ClientSession() as session:
        hub = start_hub(args, "--webhook-timeout", str(args.hang_timeout))
        try:
            publisher = Publisher(session, hub, "bench")
            paths = [f"/hook/{n}".encode() for n in range(healthy)]
            for path in paths:
                await add_endpoint(session, hub, base + path.decode(), "bench")
            if silent is not None:
                await add_endpoint(session, hub, f"{silent}/hang", "bench")
            await publisher.post({"type": "warmup"})
            await receiver.until(receiver.total + healthy, 60)
            all_done = receiver.expect_each(paths, args.isolation_events)
            started = time.time()
            await publisher.batches(args.isolation_events)
            await asyncio.wait_for(all_done, 600)
            return [args.isolation_events / (receiver.done_at[p] - started) for p in paths]
        finally:
            hub.stop()


async def isolation(args: argparse.Namespace, receiver: Receiver, base: str, silent: str) -> dict[str, Any]:
    """``--rounds`` pairs of runs, without and with the hanging endpoint, the order alternating from
    pair to pair (the load of the machine drifts within a pair)."""
    figures: dict[str, list[list[float]]] = {"without_hanging": [], "with_hanging": []}
    ratios_min, ratios_median = [], []
    for n in range(args.rounds):
        labels = ("without_hanging", "with_hanging") if n % 2 == 0 else ("with_hanging", "without_hanging")
        pair = {label: await isolation_run(args, receiver, base, silent if label == "with_hanging" else None)
                for label in labels}
        for label, rates in pair.items():
            figures[label].append(rates)
        # Endpoint by endpoint across two runs is mostly scheduling noise: each healthy endpoint's rate
        # with the hanging one is compared with the median healthy endpoint's rate without it.
        baseline = statistics.median(pair["without_hanging"])
        ratios = [rate / baseline for rate in pair["with_hanging"]]
        ratios_min.append(round(min(ratios), 3))
        ratios_median.append(round(statistics.median(ratios), 3))
    return {"scenario": "isolation", "endpoints": args.endpoints, "events": args.isolation_events,
            "timeout_s": args.hang_timeout, "rounds": args.rounds,
            **{f"{label}_per_endpoint_min": [round(min(v), 1) for v in runs] for label, runs in figures.items()},
            **{f"{label}_per_endpoint_median": [round(statistics.median(v), 1) for v in runs]
               for label, runs in figures.items()},
            **{f"{label}_total_per_second": [round(sum(v), 1) for v in runs] for label, runs in figures.items()},
            "ratio_min": ratios_min, "ratio_median": ratios_median,
            "ratio_min_median": statistics.median(ratios_min), "ratio_median_median": statistics.median(ratios_median)}


async def latency(args: argparse.Namespace, receiver: Receiver, base: str) -> dict[str, Any]:
    hub = start_hub(args)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            publisher = Publisher(session, hub, "bench")
            await add_endpoint(session, hub, f"{base}/hook", "bench")
            await publisher.post({"type": "warmup"})
            await receiver.until(receiver.total + 1, 30)
            sent: dict[str, float] = {}
            total = receiver.total + args.samples
            cpu_before = cpu(hub)

            async def one(n: int) -> None:
                t0 = time.time()
                sent[(await publisher.post({"type": "bench.latency", "data": n}))["id"]] = t0

            tasks = []
            interval = 1.0 / args.rate
            next_at = time.perf_counter()
            for n in range(args.samples):
                tasks.append(asyncio.ensure_future(one(n)))
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            await asyncio.gather(*tasks)
            await receiver.until(total, 120)
            cpu_us = (cpu(hub) - cpu_before) / args.samples * 1e6
    finally:
        hub.stop()
    latencies = [(receiver.arrived[event_id] - t0) * 1000 for event_id, t0 in sent.items()]
    ordered = sorted(latencies)
    return {"scenario": "latency", "rate": args.rate, "samples": args.samples,
            "latency_ms_p50": round(statistics.median(latencies), 2),
            "latency_ms_p99": round(ordered[int(0.99 * (len(ordered) - 1))], 2),
            "latency_ms_max": round(ordered[-1], 2), "hub_cpu_us_per_event": round(cpu_us, 1)}


async def run(args: argparse.Namespace) -> None:
    receiver = Receiver()
    server, base = await listen(receiver)
    silent_server, silent = await listen(receiver, answer=False)
    try:
        for scenario in args.scenario:
            facts = machine_facts()
            if scenario == "throughput":
                result = await throughput(args, receiver, base)
            elif scenario == "isolation":
                result = await isolation(args, receiver, base, silent)
            else:
                result = await latency(args, receiver, base)
            record = {"benchmark": "webhooks", **facts, "store": "redis" if args.redis else
                      "memory" if args.memory else "sqlite", "sender": args.sender or "default", **result,
                      "loadavg_end": os.getloadavg()[0]}
            print(json.dumps(record), flush=True)
            if not args.no_save:
                save_result("webhooks", record)
    finally:
        server.close()
        silent_server.close()


SCENARIOS = ("throughput", "isolation", "latency")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS,
                        help="run only this scenario (repeat for several)")
    parser.add_argument("--events", type=int, default=20000, help="throughput: events (one endpoint)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput: interleaved rounds of hub and floor; isolation: pairs of runs")
    parser.add_argument("--floor", action="append", choices=("aiohttp", "httpx"),
                        help="throughput: bare clients to measure beside the hub (default: both)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight per endpoint (hub default 4)")
    parser.add_argument("--endpoints", type=int, default=100, help="isolation: endpoints, one of them hanging")
    parser.add_argument("--isolation-events", type=int, default=500, help="isolation: events (each endpoint)")
    parser.add_argument("--hang-timeout", type=float, default=1.0, help="isolation: the hub's --webhook-timeout")
    parser.add_argument("--samples", type=int, default=5000, help="latency: events")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency: events per second")
    parser.add_argument("--sender", choices=("inline", "process"), help="the hub's --webhook-sender")
    parser.add_argument("--memory", action="store_true", help="the hub keeps everything in memory")
    parser.add_argument("--redis", help="the hub keeps the log and the webhook state in this Redis (empty)")
    parser.add_argument("--hub-arg", action="append", default=[], help="extra argument for 'pushhub serve'")
    parser.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")
    args = parser.parse_args()
    args.scenario = args.scenario or list(SCENARIOS)
    args.floor = args.floor or ["aiohttp", "httpx"]
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
