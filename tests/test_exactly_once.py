"""Exactly-once publishing across crashes, on every durable backend: the hub kills itself (SIGKILL,
the test-only fault point) right after an append is durable and before anyone is answered; every
request that got no answer is sent again, and each is in the log exactly once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from pushhub.faults import KILL_AFTER_APPEND, VARIABLE

from .redis_servers import RedisClusterServers
from .utils import TIMEOUT, HubProcess

PUBLISHERS = ("publisher-key-a", "publisher-key-b")
KEYS = 12
KILLS = [5, 9, 4]  # the hub dies after this many appends, once per start


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def start(request: pytest.FixtureRequest, hub_factory: Callable[..., HubProcess]) -> Callable[..., HubProcess]:
    """Starts a hub on the backend, with the fault point armed to kill it after ``kill`` appends."""
    if request.param == "redis-cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flush()
        chosen: tuple[str, ...] = ("--redis", cluster.url, "--redis-cluster")
        backend = None
    else:
        chosen, backend = (), request.param

    def started(*args: str, kill: int) -> HubProcess:
        return hub_factory(*chosen, *args, backend=backend, env={VARIABLE: f"{KILL_AFTER_APPEND}{kill}"})
    return started


def restart(hub: HubProcess, kills: list[int]) -> None:
    """The hub killed itself: start it again, armed with the next fault if any is left."""
    assert hub.process is not None and hub.process.wait(4 * TIMEOUT) == -9, hub.log()
    hub.env = {VARIABLE: f"{KILL_AFTER_APPEND}{kills.pop(0)}"} if kills else {}
    hub.start()


async def test_every_key_sent_again_after_crashes_is_published_once(start: Callable[..., HubProcess]) -> None:
    kills = list(KILLS)
    hub = start(*(arg for key in PUBLISHERS for arg in ("--publisher-key", key)), kill=kills.pop(0))
    answers: dict[tuple[str, int], httpx.Response] = {}
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        for n in range(KEYS):
            for publisher in PUBLISHERS:  # both use the same key names: each publisher has its own
                body = orjson.dumps({"type": "order.created", "data": {"n": n}})
                headers = {"authorization": f"Bearer {publisher}", "idempotency-key": f"order-{n}"}
                while (publisher, n) not in answers:
                    try:
                        answers[(publisher, n)] = await client.post(f"{hub.url}/v1/channels/orders/events",
                                                                    content=body, headers=headers)
                    except httpx.TransportError:
                        restart(hub, kills)
        history = (await client.get(f"{hub.url}/v1/channels/orders/events?limit=1000",
                                    headers={"authorization": f"Bearer {PUBLISHERS[0]}"})).json()
    assert kills == [] and {a.status_code for a in answers.values()} == {202}
    # Each request killed between its append and its answer was answered from its record, once.
    assert sum(a.headers["idempotent-replayed"] == "true" for a in answers.values()) == len(KILLS)
    logged = [(e["id"], e["data"]["n"]) for e in history["events"]]
    assert len(logged) == KEYS * len(PUBLISHERS)
    assert sorted(logged) == sorted((a.json()["id"], n) for (_, n), a in answers.items())


async def test_an_ingested_delivery_sent_again_after_a_crash_is_published_once(
        start: Callable[..., HubProcess], tmp_path: Path) -> None:
    config = tmp_path / "ingest.toml"
    config.write_text('[sources.backend]\nscheme = "none"\nchannel = "backend"\nid = "header:X-Request-Id"\n')
    hub = start("--ingest-config", str(config), kill=1)
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        with pytest.raises(httpx.TransportError):
            await client.post(f"{hub.url}/v1/ingest/backend", json={"n": 1}, headers={"x-request-id": "r-1"})
        restart(hub, [])
        again = await client.post(f"{hub.url}/v1/ingest/backend", json={"n": 1}, headers={"x-request-id": "r-1"})
        history = (await client.get(f"{hub.url}/v1/channels/backend/events")).json()["events"]
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert [e["id"] for e in history] == [again.json()["id"]]
