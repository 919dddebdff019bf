"""Upgradeable data: the data directory written by release c5059d1 (tests/data/c5059d1, made by its
make.py) opens with this code with everything in place; data in a newer format is refused; Redis
data of format 0 is carried over."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis, RedisCluster

from pushhub.backends import create_backend, redis_format, redis_keys, sqlite_schema
from pushhub.errors import DataVersionError
from pushhub.idempotency import fingerprint
from pushhub.retention import RetentionPolicy

from .redis_servers import RedisClusterServers, RedisServer
from .utils import TIMEOUT, HubProcess, sse_stream

FIXTURE = Path(__file__).parent / "data" / "c5059d1"
WINDOW = 72 * 3600.0  # the dedupe window of that release (its --dedupe-window default)


def old_data(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("pushhub.db", "dedupe.db"):
        shutil.copy(FIXTURE / name, data / name)
    # make.py's hub wrote its dedupe records on 2026-12-01 to expire 72 hours later: move them by the
    # time since, so that they stand as they stood when the old hub stopped, whatever the date.
    with contextlib.closing(sqlite3.connect(data / "dedupe.db")) as db, db:
        (newest,) = db.execute("SELECT max(expires) FROM dedupe").fetchone()
        db.execute("UPDATE dedupe SET expires = expires + ?", (time.time() + WINDOW - newest,))
    return data, json.loads((FIXTURE / "manifest.json").read_text())


async def test_the_data_of_release_c5059d1_is_all_there_after_the_upgrade(
        hub_factory: Callable[..., HubProcess], tmp_path: Path) -> None:
    data, old = old_data(tmp_path)
    config = tmp_path / "ingest.toml"
    config.write_text('[sources.backend]\nscheme = "none"\nchannel = "backend"\nid = "header:X-Request-Id"\n')
    hub = hub_factory("--data-dir", str(data), "--ingest-config", str(config), backend=None)
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as c:
        for channel, events in old["history"].items():
            assert (await c.get(f"/v1/channels/{channel}/events")).json()["events"] == events
            assert (await c.get(f"/v1/channels/{channel}")).json() == old["states"][channel]
        # A cursor handed out before the upgrade resumes exactly after it, in history and in a stream.
        after = (await c.get("/v1/channels/orders/events", params={"after": old["cursor"]})).json()
        assert after["reset"] is None and after["events"] == old["history"]["orders"][2:]
        async with sse_stream(hub.url, ["orders"], last_event_id=old["cursor"]) as stream:
            resumed = await stream.events(2)
            new = (await c.post("/v1/channels/orders/events", json={"type": "after.upgrade"})).json()
            assert (await stream.events(1))[0]["id"] == new["id"]
        assert [e["id"] for e in resumed] == [e["id"] for e in old["history"]["orders"][2:]]
        assert (new["epoch"], new["offset"]) == (old["states"]["orders"]["epoch"], old["states"]["orders"]["top"] + 1)
        # The endpoint and its pending deliveries.
        endpoint = (await c.get(f"/v1/webhooks/endpoints/{old['endpoint']['id']}")).json()
        assert endpoint["url"] == old["endpoint"]["url"] and endpoint["enabled"] is False
        deliveries = (await c.get("/v1/webhooks/deliveries")).json()["data"]
        assert deliveries == old["deliveries"]
        # The events already in the log are in the event index; their origin was never recorded.
        first = old["history"]["orders"][0]
        (found,) = (await c.get("/v1/admin/events", params={"id": first["id"]})).json()["data"]
        assert found["event"] == first and found["origin"] is None and found["repeats"] == 0
        typed = (await c.get("/v1/admin/events", params={"type": first["type"]})).json()["data"]
        assert first["id"] in [f["event"]["id"] for f in typed]
        # The records of dedupe.db answer retries as the old hub did.
        keyed = await c.post("/v1/channels/orders/events", content=old["keyed_body"],
                             headers={"idempotency-key": "pay-4"})
        batch = await c.post("/v1/channels/news/events", content=old["batch_body"],
                             headers={"idempotency-key": "news-1"})
        ingested = await c.post("/v1/ingest/backend", json={"event": "x"}, headers={"x-request-id": "req-1"})
        reused = await c.post("/v1/channels/orders/events", content=b'{"type":"other"}',
                              headers={"idempotency-key": "pay-4"})
    assert (keyed.json(), keyed.headers["idempotent-replayed"]) == (old["keyed"], "true")
    assert (batch.json(), batch.headers["idempotent-replayed"]) == (old["batch"], "true")
    assert (ingested.status_code, ingested.json()) == (200, {**old["ingested"], "duplicate": True})
    assert reused.status_code == 422
    hub.stop()
    with sqlite3.connect(data / "pushhub.db") as db:
        assert sqlite_schema.version_of(db) == sqlite_schema.VERSION
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "webhook_attempts_delivery" in indexes and "webhook_attempts_event" not in indexes  # version 3
    with sqlite3.connect(data / "pushhub.db.v0.bak") as copy:
        assert sqlite_schema.version_of(copy) == 0
        assert copy.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 7


def test_a_file_of_a_newer_release_is_refused(hub_factory: Callable[..., HubProcess], tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "pushhub.db") as db:
        db.execute("CREATE TABLE from_the_future (x)")
        db.execute(f"PRAGMA user_version = {sqlite_schema.VERSION + 1}")
    with pytest.raises(RuntimeError, match=f"schema version {sqlite_schema.VERSION + 1}, newer than this pushhub"):
        hub_factory("--data-dir", str(tmp_path), backend=None)
    with sqlite3.connect(tmp_path / "pushhub.db") as db:  # left as it was
        assert sqlite_schema.version_of(db) == sqlite_schema.VERSION + 1


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_url(request: pytest.FixtureRequest) -> tuple[str, bool]:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.fresh_url(), False
    cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
    cluster.flush()
    return cluster.url, True


async def test_redis_records_of_format_0_are_carried_over(redis_url: tuple[str, bool]) -> None:
    url, cluster = redis_url
    client: Redis | RedisCluster = RedisCluster.from_url(url) if cluster else Redis.from_url(url)
    body = b'{"type":"t"}'
    answer = orjson.dumps({"id": "evt_old", "channel": "orders", "epoch": "ep0ch", "offset": 7,
                           "cursor": "ep0ch.7"}).decode()
    old = orjson.dumps({"fingerprint": fingerprint("orders", body), "answer": answer})
    names = [f"{{publish:k-{n}}}" for n in range(6)]  # hash tags that spread over the shards
    for name in names:
        await client.set(redis_keys.LEGACY_DEDUPE + name, old, px=60_000)
    await client.set(redis_keys.LEGACY_DEDUPE + "{ingest:gh:d-1}", answer, px=60_000)
    backend = create_backend(url, RetentionPolicy(), cluster=cluster)
    try:
        await backend.open()
        assert int(await client.get(redis_keys.FORMAT)) == redis_format.FORMAT
        assert [name async for name in client.scan_iter(match=redis_keys.LEGACY_DEDUPE + "*")] == []
        for n in range(6):
            assert 0 < await client.pttl(redis_keys.once_key("orders", "*", f"k-{n}")) <= 60_000
        assert await client.hget(redis_keys.once_key("orders", "ingest:gh", "d-1"), "f") == b"7"
        await client.set(redis_keys.FORMAT, redis_format.FORMAT + 1)
        again = create_backend(url, RetentionPolicy(), cluster=cluster)
        with pytest.raises(DataVersionError, match=f"format {redis_format.FORMAT + 1}, newer than this release"):
            await again.open()
        await again.close()
    finally:
        await backend.close()
        await client.aclose()
