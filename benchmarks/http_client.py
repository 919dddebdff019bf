"""The floor of the outgoing webhooks: what an HTTP client library reaches bare, from one Python
process, POSTing webhook-sized signed-looking requests to one receiver.

    python -m benchmarks.http_client --client aiohttp --url http://127.0.0.1:PORT/hook --requests 20000

``--concurrency`` requests in flight over a pool of keep-alive connections (the hub's default is 4
per endpoint). No signing, no SSRF check, no bookkeeping: what is left is the library and the event
loop (uvloop, as the hub runs). Prints one JSON line. ``benchmarks/webhooks.py`` runs it beside the
hub in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import uvloop

BODY = json.dumps({"type": "bench.throughput", "timestamp": "2026-12-01T00:00:00.000Z", "data": {"n": 1},
                   "meta": {}, "metadata": {"event_id": "evt_" + "x" * 22, "channel": "bench", "cursor": "e.1",
                                            "delivery_id": "dl_" + "x" * 16, "endpoint_id": "ep_" + "x" * 16,
                                            "attempt": 1}}).encode()
HEADERS = {"content-type": "application/json", "webhook-id": "evt_" + "x" * 22, "webhook-timestamp": "1764547200",
           "webhook-signature": "v1," + "x" * 44, "user-agent": "pushhub-bench"}

Post = Callable[[], Awaitable[int]]


async def drive(post: Post, requests: int, concurrency: int) -> float:
    """Seconds ``requests`` POSTs take, ``concurrency`` at a time."""
    left = requests

    async def lane() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status = await post()
            assert status == 200, status

    for _ in range(min(requests, 200)):  # warm up the pool
        await post()
    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - started


async def with_aiohttp(url: str, requests: int, concurrency: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def post() -> int:
            async with session.post(url, data=BODY, headers=HEADERS, allow_redirects=False) as response:
                await response.read()
                return response.status
        return await drive(post, requests, concurrency)


async def with_httpx(url: str, requests: int, concurrency: int) -> float:
    import httpx

    async with httpx.AsyncClient(follow_redirects=False) as client:
        async def post() -> int:
            return (await client.post(url, content=BODY, headers=HEADERS)).status_code
        return await drive(post, requests, concurrency)


CLIENTS = {"aiohttp": with_aiohttp, "httpx": with_httpx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=sorted(CLIENTS), default="aiohttp")
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    cpu = time.process_time()
    seconds = uvloop.run(CLIENTS[args.client](args.url, args.requests, args.concurrency))
    cpu_us = (time.process_time() - cpu) / (args.requests + 200) * 1e6  # the warm-up requests too
    print(json.dumps({"client": args.client, "requests": args.requests, "concurrency": args.concurrency,
                      "seconds": round(seconds, 3), "per_second": round(args.requests / seconds, 1),
                      "cpu_us_per_request": round(cpu_us, 1)}))


if __name__ == "__main__":
    main()
