"""``pushhub serve --takeover``: a hub restarted beside the running one, on the same port (and data
directory, on SQLite), while a publisher and a prober keep calling it, Node's ``eventsource``
follows a stream and the Python client a WebSocket: no connection is refused, no publish fails, and
each subscriber receives every event once; the old hub's ``/readyz`` answers 503 while it drains (on Redis
from when the new one serves). On SQLite, on Redis, and on Redis with ``--workers 2``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pushhub_client import Client, Event

from .redis_servers import RedisServer
from .test_nginx_restart import NODE_FOLLOW, node_follower, until
from .test_python_client import FAST, collecting
from .utils import TIMEOUT, HubProcess, ReadyzProbe, free_port, sse_stream

if not (NODE_FOLLOW.parent / "node_modules" / "eventsource").is_dir():
    pytest.skip("needs `npm ci` in tests/node (scripts/test runs it)", allow_module_level=True)


def serve_fails(*args: str) -> str:
    """What ``pushhub serve`` prints when it refuses to start (it must exit, not serve)."""
    done = subprocess.run([sys.executable, "-m", "pushhub", "serve", *args], capture_output=True, text=True,
                          timeout=4 * TIMEOUT)
    assert done.returncode != 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_a_second_hub_on_the_same_port_or_data_dir_is_refused(tmp_path: Path) -> None:
    first = HubProcess(["--data-dir", str(tmp_path / "data")], log_path=str(tmp_path / "first.log")).start()
    try:
        assert "writes" in serve_fails("--data-dir", str(tmp_path / "data"), "--port", str(free_port()))
        assert "cannot listen" in serve_fails("--data-dir", str(tmp_path / "other"), "--port", str(first.port))
    finally:
        first.stop()
    assert "nothing to hand over" in serve_fails("--memory", "--takeover", "--port", str(free_port()))


def test_a_second_hub_on_redis_on_the_same_port_is_refused(tmp_path: Path, redis_server: RedisServer) -> None:
    args = ["--redis", redis_server.fresh_url(), "--data-dir", str(tmp_path / "data")]
    first = HubProcess(args, log_path=str(tmp_path / "first.log")).start()
    try:
        assert "cannot listen" in serve_fails(*args, "--port", str(first.port))
        assert (tmp_path / "data" / f"pushhub-{first.port}.pid").read_text().strip() == str(first.process.pid)
    finally:
        first.stop()


@pytest.mark.parametrize("backend", ["sqlite", "redis", "redis-workers"])
async def test_takeover_refuses_no_connection_and_loses_no_event(tmp_path: Path, backend: str,
                                                                 request: pytest.FixtureRequest) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "--sse-retry-ms", "100", "--head-timeout", str(8 * TIMEOUT)]
    if backend != "sqlite":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        args += ["--redis", redis_server.fresh_url()] + (["--workers", "2"] if backend == "redis-workers" else [])
    old = HubProcess(args, log_path=str(tmp_path / "old.log")).start()
    new = HubProcess([*args, "--takeover"], port=old.port, log_path=str(tmp_path / "new.log"))
    failures: list[str] = []
    published = 0
    try:
        async with httpx.AsyncClient(base_url=old.url, timeout=TIMEOUT,
                                     limits=httpx.Limits(max_keepalive_connections=0)) as client, \
                Client(old.url, backoff=FAST, timeout=TIMEOUT) as subscriber:
            start = (await client.get("/v1/channels/feed")).json()["cursor"]
            async with node_follower(f"{old.url}/v1/sse?channel=feed&lastEventId={start}") as follower, \
                    collecting(subscriber.subscribe_ws("feed")) as ws, \
                    sse_stream(old.url, ["held"]) as held, ReadyzProbe.open(old.port) as old_ready:
                stop = asyncio.Event()

                async def publisher() -> None:
                    nonlocal published
                    while not stop.is_set():
                        try:
                            answer = await client.post("/v1/channels/feed/events",
                                                       json={"type": "tick", "data": {"seq": published + 1}})
                        except httpx.TransportError as exc:
                            failures.append(f"publish {published + 1}: {exc!r}")
                            return
                        if answer.status_code != 202:
                            failures.append(f"publish {published + 1}: {answer.status_code} {answer.text}")
                            return
                        published += 1

                async def prober() -> None:
                    while not stop.is_set():
                        try:
                            await client.get("/healthz")
                        except httpx.TransportError as exc:
                            failures.append(f"probe: {exc!r}")
                            return

                async def followers_have(count: int) -> bool:
                    return len(follower.seqs()) >= count and len(ws.events) >= count

                async def published_or_failed(count: int) -> bool:
                    return published >= count or bool(failures)

                tasks = [asyncio.create_task(publisher()), asyncio.create_task(prober())]
                await until(lambda: followers_have(20), "the first events in the followers")
                assert new.start() is new  # healthy: answered by one process or the other
                assert old.process is not None and new.process is not None
                goodbye = await held.next(timeout=8 * TIMEOUT)  # the old hub drains once the new one serves
                assert goodbye.event == "disconnect"
                # With --workers each worker drains on its own SIGTERM, and the probe may be on the other one.
                workers = 2 if backend == "redis-workers" else 1

                async def old_draining() -> bool:
                    log = await asyncio.to_thread(Path(old.log_path or "").read_text, errors="replace")
                    return log.count("shutting down") >= workers

                await until(old_draining, "every process of the old hub draining")
                status, answer = await old_ready.finish()
                assert status == 503 and answer["checks"]["draining"] == "draining", answer
                async with httpx.AsyncClient(base_url=old.url, timeout=TIMEOUT) as fresh:
                    assert (await fresh.get("/readyz")).status_code == 200  # a new connection: the new hub
                code = await asyncio.to_thread(old.process.wait, 4 * TIMEOUT)
                assert code in (0, -signal.SIGTERM), old.log()
                before_exit = published
                await until(lambda: published_or_failed(before_exit + 20), "publishes to the new hub")
                stop.set()
                await asyncio.gather(*tasks)
                assert failures == [], failures
                await until(lambda: followers_have(published), f"{published} events in the followers")
                assert follower.seqs() == list(range(1, published + 1))
                assert [e.data["seq"] for e in ws.events if isinstance(e, Event)] == list(range(1, published + 1))
                assert not follower.closed
        if backend != "sqlite":  # the new hub (its supervisor) is the one a next takeover finds
            pid_file = tmp_path / "data" / f"pushhub-{old.port}.pid"

            async def recorded() -> bool:
                return pid_file.exists() and pid_file.read_text().strip() == str(new.process.pid)

            await until(recorded, f"the new hub's pid in {pid_file}")
    finally:
        with contextlib.suppress(Exception):
            old.stop()
        new.stop()
    assert "Traceback" not in new.log()
    assert "cannot steer" not in new.log()  # every new connection went to the new hub (hub/pushhub/steering.py)
