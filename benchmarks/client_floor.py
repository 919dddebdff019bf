"""``python -m benchmarks.floor client``: POSTs per second from a bare ``aiohttp`` and a bare
``httpx`` client, ``--in-flight`` at a time, to the fast receiver of the webhook benchmark, beside
the webhooks pushhub delivers to the same receiver, interleaved (see :mod:`benchmarks.floor`);
``--base COMMIT`` adds that commit's pushhub (unpacked with ``git archive``) as the reference for a
change.

The receiver (:class:`benchmarks.webhooks.Receiver`) runs in a process of its own, so that each
contender's process holds only the sending side, as the hub's does.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
from collections.abc import Awaitable
from multiprocessing.connection import Connection as Pipe
from typing import Any

import aiohttp
import httpx
import orjson
import uvloop

from benchmarks.loadgen import Hub, machine_facts, raise_fd_limit
from benchmarks.publish import unpack
from benchmarks.report import figures, heading, interleave, ratio, record, table
from benchmarks.webhooks import Receiver, listen

CONTENDERS = ("aiohttp", "httpx", "pushhub")
# What pushhub's sender puts on every delivery (Standard Webhooks), with fixed values.
HEADERS = {"content-type": "application/json", "webhook-id": "msg_0123456789abcdefghijkl",
           "webhook-timestamp": "1700000000",
           "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="}


def receiver_main(pipe: Pipe) -> None:
    uvloop.run(_receiver(pipe))


async def _receiver(pipe: Pipe) -> None:
    """Serve on a free port (sent first), then answer each ``count`` with the monotonic time at
    which the receiver had seen that many requests (or None when ``timeout`` passed first)."""
    receiver = Receiver()
    server, _ = await listen(receiver)
    pipe.send(server.sockets[0].getsockname()[1])
    loop = asyncio.get_running_loop()
    while (command := await loop.run_in_executor(None, pipe.recv)) is not None:
        count, timeout = command
        try:
            await receiver.until(count, timeout)
            pipe.send(time.monotonic())
        except TimeoutError:
            pipe.send(None)
    server.close()


def body(n: int) -> bytes:
    """A POST the size of one of pushhub's webhook deliveries."""
    return orjson.dumps({"type": "bench.floor", "timestamp": "2026-01-01T00:00:00.000Z",
                         "data": {"n": n, "channel": "bench", "cursor": "k3j9x2ab.%d" % n},
                         "metadata": {"event_id": f"evt_floor_{n}", "channel": "bench", "offset": n}})


async def send_aiohttp(url: str, requests: int, in_flight: int) -> tuple[float, float]:
    numbers = iter(range(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:
        async def sender() -> None:
            for n in numbers:
                async with session.post(url, data=body(n), headers=HEADERS) as response:
                    await response.read()
                    response.raise_for_status()

        return await timed(asyncio.gather(*(sender() for _ in range(in_flight))))


async def send_httpx(url: str, requests: int, in_flight: int) -> tuple[float, float]:
    numbers = iter(range(requests))
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(limits=limits) as client:
        async def sender() -> None:
            for n in numbers:
                (await client.post(url, content=body(n), headers=HEADERS)).raise_for_status()

        return await timed(asyncio.gather(*(sender() for _ in range(in_flight))))


async def timed(work: Awaitable[Any]) -> tuple[float, float]:
    """Seconds and CPU seconds of this process that ``work`` takes."""
    started, before = time.monotonic(), os.times()
    await work
    after = os.times()
    return time.monotonic() - started, after.user + after.system - before.user - before.system


class Target:
    """The receiver process, and how many requests it has been sent so far."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=receiver_main, args=(child,), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{self.pipe.recv()}/hook"
        self.sent = 0

    def until(self, count: int, timeout: float) -> float:
        self.pipe.send((count, timeout))
        reached = self.pipe.recv()
        if reached is None:
            raise TimeoutError(f"the receiver saw fewer than {count} requests in {timeout:g} s")
        return float(reached)

    def close(self) -> None:
        self.pipe.send(None)
        self.process.join(10)


async def webhooks_from_pushhub(hub: Hub, target: Target, requests: int) -> float:
    """Seconds from the first publish until ``requests`` webhooks have reached the receiver."""
    async with httpx.AsyncClient(base_url=hub.url, timeout=60) as client:
        endpoint = {"url": target.url, "channels": ["bench"]}
        (await client.post("/v1/webhooks/endpoints", json=endpoint)).raise_for_status()
        (await client.post("/v1/channels/bench/events", json={"type": "warmup"})).raise_for_status()
        target.sent += 1
        await asyncio.to_thread(target.until, target.sent, 30)
        started = time.monotonic()
        for first in range(0, requests, 100):
            batch = [{"type": "bench.floor", "data": {"n": n}} for n in range(first, min(requests, first + 100))]
            (await client.post("/v1/channels/bench/events", json={"events": batch})).raise_for_status()
    target.sent += requests
    return await asyncio.to_thread(target.until, target.sent, 600) - started


def measure(name: str, target: Target, args: argparse.Namespace, base_tree: str | None) -> dict[str, Any]:
    load = os.getloadavg()[0]
    if name in ("pushhub", "base"):
        hub_args = ["--webhook-allow-network", "127.0.0.0/8", "--webhook-max-concurrency", str(args.in_flight)]
        hub = Hub(storage="sqlite", extra_args=hub_args, tree=None if name == "pushhub" else base_tree).start()
        try:
            before = hub.cpu_seconds()
            elapsed = uvloop.run(webhooks_from_pushhub(hub, target, args.requests))
            after = hub.cpu_seconds()
        finally:
            hub.stop()
        assert before is not None and after is not None
        cpu = sum(after) - sum(before)
    else:
        sender = send_aiohttp if name == "aiohttp" else send_httpx
        elapsed, cpu = uvloop.run(sender(target.url, args.requests, args.in_flight))
        target.sent += args.requests
        target.until(target.sent, 60)
    return {"contender": name, "per_s": round(args.requests / elapsed, 1),
            "sender_us_per_request": round(cpu / args.requests * 1e6, 1), "loadavg": round(load, 2)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    facts = machine_facts()
    contenders = CONTENDERS + (("base",) if args.base else ())
    target = Target()
    try:
        with tempfile.TemporaryDirectory(prefix="pushhub-bench-base-") as tmp:
            base_tree = unpack(args.base, tmp) if args.base else None
            runs = interleave(contenders, args.runs, lambda name: measure(name, target, args, base_tree))
    finally:
        target.close()
    rates = figures(runs, "per_s")
    saved = record("floor-client", {"runs": args.runs, "requests": args.requests, "in_flight": args.in_flight,
                                    "base": args.base, "nice": os.getpriority(os.PRIO_PROCESS, 0)}, {
        "per_s": rates,
        "sender_us_per_request": figures(runs, "sender_us_per_request"),
        "pushhub_ratio": {name: ratio(rates["pushhub"], rates[name]) for name in contenders if name != "pushhub"},
    }, runs, facts)
    print(summary(saved))
    return saved


def summary(saved: dict[str, Any]) -> str:
    shares = ", ".join(f"of {name} {share:.2f}" for name, share in saved["pushhub_ratio"].items() if share is not None)
    contenders = list(saved["per_s"])
    rows = [("POSTs/s (pushhub, base: webhooks/s)", [saved["per_s"][n] for n in contenders], f"pushhub {shares}"),
            ("sender CPU us/request", [saved["sender_us_per_request"][n] for n in contenders], "")]
    return "\n".join([
        heading(f"floor client: {saved['requests']} POSTs, {saved['in_flight']} in flight, to the webhook "
                "benchmark's receiver", saved),
        *table(rows, contenders, ""),
    ])
