"""Redis scale-out figures: Redis round trips per publish, and publish → SSE fan-out throughput with
one and with two hub processes sharing a throwaway redis-server on this machine.

    python -m benchmarks.redis_fanout [--events 2000] [--subscribers 20] [--concurrency 16]

Round trips are counted by Redis itself (INFO commandstats before and after). Throughput is the
rate at which HTTP publishes are answered while every subscriber (spread evenly over the hubs)
receives every event; "delivered/s" counts event deliveries to subscribers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from typing import Any

import httpx
import redis.asyncio as aioredis

from tests.redis_servers import RedisServer, running
from tests.utils import HubProcess, sse_stream


async def command_calls(client: aioredis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def round_trips(hub: HubProcess, client: aioredis.Redis, count: int, batch: int) -> dict[str, float]:
    body = {"events": [{"type": "t", "data": i} for i in range(batch)]} if batch > 1 else {"type": "t"}
    async with httpx.AsyncClient(base_url=hub.url) as http:
        await http.post("/v1/channels/rt/events", json=body)  # load the script, open the connection
        before = await command_calls(client)
        for _ in range(count):
            response = await http.post("/v1/channels/rt/events", json=body)
            assert response.status_code == 202, response.text
        after = await command_calls(client)
    after["info"] -= 1
    delta = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    return {name: calls / count for name, calls in sorted(delta.items())}


async def throughput(hubs: list[HubProcess], events: int, subscribers: int, concurrency: int) -> dict[str, float]:
    async with contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(sse_stream(hubs[i % len(hubs)].url, ["bench"]))
                   for i in range(subscribers)]
        clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=h.url, timeout=30)) for h in hubs]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(events):
            queue.put_nowait(i)

        async def publisher(n: int) -> None:
            client = clients[n % len(clients)]
            while not queue.empty():
                i = queue.get_nowait()
                response = await client.post("/v1/channels/bench/events", json={"type": "t", "data": i})
                assert response.status_code == 202

        async def receiver(stream: Any) -> None:
            await stream.events(events, timeout=120)

        start = time.perf_counter()
        receiving = asyncio.gather(*(receiver(s) for s in streams))
        await asyncio.gather(*(publisher(n) for n in range(concurrency)))
        published = time.perf_counter() - start
        await receiving
        delivered = time.perf_counter() - start
    return {"publish/s": events / published, "delivered/s": events * subscribers / delivered,
            "all delivered after s": delivered}


def start_hubs(url: str, count: int) -> list[HubProcess]:
    return [HubProcess(["--redis", url]).start() for _ in range(count)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--round-trips", type=int, default=200)
    args = parser.parse_args()
    server = RedisServer(tempfile.mkdtemp(prefix="pushhub-bench-"))
    with running(server):
        client = aioredis.Redis.from_url(server.url)
        hubs = start_hubs(server.fresh_url(), 2)
        try:
            for batch in (1, 10):
                calls = await round_trips(hubs[0], client, args.round_trips, batch)
                print(f"Redis commands per publish request of {batch} event(s): "
                      + ", ".join(f"{name} {n:.2f}" for name, n in calls.items()))
            for subscribers in (0, args.subscribers):
                for count in (1, 2):
                    figures = await throughput(hubs[:count], args.events, subscribers, args.concurrency)
                    print(f"{count} hub process(es), {subscribers} SSE subscribers, {args.events} events: "
                          + ", ".join(f"{name} {value:,.1f}" for name, value in figures.items()))
        finally:
            for hub in hubs:
                hub.stop()
            await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
