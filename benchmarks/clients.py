"""Costs of the Python client: events per second it receives over SSE and WebSocket from a real
hub, how long it takes to resume after a hub restart, and the cost of verifying one webhook.

Run from the repository root: ``python -m benchmarks.clients [--events N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import timeit

from pushhub_client import Backoff, Client, MemoryDedupeStore, Subscription, WebhookReceiver, sign, verify_webhook

from tests.utils import HubProcess

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BATCH = 100


async def consume(subscription: Subscription, count: int) -> float:
    """Seconds from the first to the ``count``-th event."""
    first = 0.0
    seen = 0
    async for _ in subscription:
        seen += 1
        if seen == 1:
            first = time.perf_counter()
        if seen == count:
            return time.perf_counter() - first
    raise AssertionError("subscription ended")


async def throughput(hub: HubProcess, transport: str, events: int) -> None:
    async with Client(hub.url) as client:
        channel = f"bench-{transport}"
        subscription = client.subscribe(channel) if transport == "sse" else client.subscribe_ws(channel)
        async with subscription:
            consumer = asyncio.ensure_future(consume(subscription, events))
            await asyncio.wait_for(subscription.connected.wait(), 10)
            payload = {"n": 0, "pad": "x" * 200}
            for start in range(0, events, BATCH):
                await client.publish_batch(channel, [{"type": "bench", "data": {**payload, "n": n}}
                                                     for n in range(start, min(events, start + BATCH))])
            elapsed = await consumer
    print(f"{transport:>3}: {events / elapsed:9.0f} events/s received ({events} events of ~300 B, one client)")


async def resume_after_restart(hub: HubProcess) -> None:
    async with Client(hub.url, backoff=Backoff(initial=0.05, maximum=0.5)) as client:
        subscription = client.subscribe("restart")
        async with subscription:
            iterator = aiter(subscription)
            first = asyncio.ensure_future(anext(iterator))
            await asyncio.wait_for(subscription.connected.wait(), 10)
            await client.publish("restart", "t", 0)
            await first
            await asyncio.to_thread(hub.restart)
            up = time.perf_counter()
            await client.publish("restart", "t", 1)
            await anext(iterator)
            print(f"resume: first event {1000 * (time.perf_counter() - up):.0f} ms after the restarted hub is healthy "
                  f"(backoff 50 ms .. 500 ms)")


def webhooks() -> None:
    body = b'{"type":"order.created","data":' + b'"' + b"x" * 1000 + b'"}'
    now = int(time.time())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now),
               "webhook-signature": sign(SECRET, "msg_1", now, body)}
    number = 20_000
    cost = timeit.timeit(lambda: verify_webhook(SECRET, headers, body, now=now), number=number) / number * 1e6
    print(f"verify_webhook: {cost:.1f} µs per 1 KB delivery")
    receiver = WebhookReceiver(SECRET, store=MemoryDedupeStore(), clock=lambda: now)

    async def receive_all() -> float:
        started = time.perf_counter()
        for n in range(number):
            msg_id = f"msg_{n}"
            await receiver.verify({**headers, "webhook-id": msg_id,
                                   "webhook-signature": sign(SECRET, msg_id, now, body)}, body)
        return (time.perf_counter() - started) / number * 1e6

    print(f"WebhookReceiver.verify with in-memory dedupe (signing included): {asyncio.run(receive_all()):.1f} µs")


async def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as data:
        hub = HubProcess(["--data-dir", data]).start()
        try:
            for transport in ("sse", "ws"):
                await throughput(hub, transport, events)
            await resume_after_restart(hub)
        finally:
            hub.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main(args.events))
    webhooks()
