"""``pushhub serve --takeover``: a hub restarted beside the running one, on the same port and data
directory, while a publisher and a prober keep calling it and Node's ``eventsource`` follows a
stream: no connection is refused, no publish fails, and the stream receives every event once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .test_nginx_restart import NODE_FOLLOW, node_follower, until
from .utils import TIMEOUT, HubProcess, free_port

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


async def test_takeover_refuses_no_connection_and_loses_no_event(tmp_path: Path) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "--sse-retry-ms", "100"]
    old = HubProcess(args, log_path=str(tmp_path / "old.log")).start()
    new = HubProcess([*args, "--takeover"], port=old.port, log_path=str(tmp_path / "new.log"))
    failures: list[str] = []
    published = 0
    try:
        async with httpx.AsyncClient(base_url=old.url, timeout=TIMEOUT,
                                     limits=httpx.Limits(max_keepalive_connections=0)) as client:
            start = (await client.get("/v1/channels/feed")).json()["cursor"]
            async with node_follower(f"{old.url}/v1/sse?channel=feed&lastEventId={start}") as follower:
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

                async def follower_has(count: int) -> bool:
                    return len(follower.seqs()) >= count

                async def published_or_failed(count: int) -> bool:
                    return published >= count or bool(failures)

                tasks = [asyncio.create_task(publisher()), asyncio.create_task(prober())]
                await until(lambda: follower_has(20), "the first events in the follower")
                assert new.start() is new  # healthy: answered by one process or the other
                assert old.process is not None
                code = await asyncio.to_thread(old.process.wait, 4 * TIMEOUT)
                assert code in (0, -signal.SIGTERM), old.log()  # uvicorn re-raises the signal once done
                before_exit = published
                await until(lambda: published_or_failed(before_exit + 20), "publishes to the new hub")
                stop.set()
                await asyncio.gather(*tasks)
                assert failures == [], failures
                await until(lambda: follower_has(published), f"{published} events in the follower")
                assert follower.seqs() == list(range(1, published + 1))
                assert not follower.closed
    finally:
        with contextlib.suppress(Exception):
            old.stop()
        new.stop()
    assert "Traceback" not in new.log()
