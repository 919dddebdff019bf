"""Outgoing webhooks from several hub processes sharing one Redis: each event is delivered once, an
endpoint registered through one process gets events published through another, a delivery held by
a killed process is finished by another, and any process replays."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from .redis_servers import RedisServer
from .utils import TIMEOUT, HubProcess, publish
from .webhook_utils import Reply, eventually, receiver

ALLOW = ("--webhook-allow-network", "127.0.0.0/8")


def two_hubs(hub_factory: Callable[..., HubProcess], redis_server: RedisServer, *args: str) -> list[HubProcess]:
    url = redis_server.fresh_url()
    return [hub_factory("--redis", url, *ALLOW, *args, backend=None) for _ in range(2)]


async def deliveries(client: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    return list((await client.get("/v1/webhooks/deliveries", params={"limit": "500", **query})).json()["data"])


async def test_each_event_is_delivered_once_whichever_process_publishes_it(
        hub_factory: Callable[..., HubProcess], redis_server: RedisServer) -> None:
    first, second = two_hubs(hub_factory, redis_server)
    async with receiver() as server, httpx.AsyncClient(base_url=first.url, timeout=TIMEOUT) as a, \
            httpx.AsyncClient(base_url=second.url, timeout=TIMEOUT) as b:
        endpoint = (await a.post("/v1/webhooks/endpoints", json={"url": server.url, "channels": ["orders"]})).json()
        # At once, before any periodic look: the other process learns of the endpoint when it publishes.
        sent = [await publish(a if n % 2 else b, "orders", data=n) for n in range(40)]
        expected = {s["id"] for s in sent}
        await server.wait_until(lambda requests: {r.headers["webhook-id"] for r in requests} >= expected)
        found = await eventually(lambda: deliveries(b, endpoint=endpoint["id"]),
                                 lambda ds: len(ds) == 40 and all(d["status"] == "succeeded" for d in ds))
        assert {d["event_id"] for d in found} == expected
        counts = Counter(r.headers["webhook-id"] for r in server.requests)
        assert set(counts.values()) == {1}, counts.most_common(3)
        attempts = (await a.get("/v1/webhooks/attempts", params={"endpoint": endpoint["id"], "limit": "500"})).json()
        assert len(attempts["data"]) == 40  # every attempt recorded, whichever process made it

        # Replay through the other process: one delivery, then the channel after a cursor.
        (delivery,) = await deliveries(a, event=sent[3]["id"])
        assert (await b.post(f"/v1/webhooks/deliveries/{delivery['id']}/replay")).status_code == 200
        assert (await server.wait_for(41))[-1].headers["webhook-id"] == sent[3]["id"]
        replay = await a.post(f"/v1/webhooks/endpoints/{endpoint['id']}/replay",
                              json={"channel": "orders", "after": sent[37]["cursor"]})
        assert replay.json() == {"replayed": 2}
        requests = await server.wait_for(43)
        assert sorted(r.headers["webhook-id"] for r in requests[41:]) == sorted([sent[38]["id"], sent[39]["id"]])

        # Deleted through one process: the other one stops delivering to it too.
        assert (await b.delete(f"/v1/webhooks/endpoints/{endpoint['id']}")).status_code == 204
        await publish(a, "orders")
        assert (await a.get(f"/v1/webhooks/endpoints/{endpoint['id']}")).status_code == 404
        assert await deliveries(a) == []


async def test_a_delivery_held_by_a_killed_process_is_finished_by_another(
        hub_factory: Callable[..., HubProcess], redis_server: RedisServer) -> None:
    url = redis_server.fresh_url()
    options = ("--redis", url, *ALLOW, "--webhook-retry-schedule", "1s,1s", "--webhook-timeout", "3")
    holder = hub_factory(*options, backend=None)
    held = asyncio.Event()

    def script(n: int) -> Reply:
        if n == 1:
            held.set()
            return Reply(200, delay=8 * TIMEOUT)  # the second attempt hangs: its sender dies meanwhile
        return Reply(503 if n == 0 else 200)

    async with receiver(script) as server, httpx.AsyncClient(base_url=holder.url, timeout=TIMEOUT) as a:
        await a.post("/v1/webhooks/endpoints", json={"url": server.url})
        sent = await publish(a, "orders")
        await asyncio.wait_for(held.wait(), 2 * TIMEOUT)
        holder.stop(9)  # mid-retry, with the attempt in flight and its lease held
        other = hub_factory(*options, backend=None)
        async with httpx.AsyncClient(base_url=other.url, timeout=TIMEOUT) as b:
            requests = await server.wait_for(3, timeout=4 * TIMEOUT)  # once the lease has run out
            assert {r.headers["webhook-id"] for r in requests} == {sent["id"]}
            await eventually(lambda: deliveries(b), lambda ds: ds[0]["status"] == "succeeded")
            attempts = (await b.get("/v1/webhooks/attempts")).json()["data"]
            assert [a["status"] for a in attempts] == [200, 503]  # the killed attempt left no record
