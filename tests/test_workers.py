"""``pushhub serve --workers N``: N processes on one port, sharing channels through Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import orjson
import pytest

from pushhub import startup
from pushhub.config import load
from pushhub.errors import BadRequest

from .redis_servers import RedisServer
from .utils import POLL, TIMEOUT, HubProcess, free_port, publish, sse_stream


def workers_of(hub: HubProcess) -> set[int]:
    """The worker processes the supervisor runs now (Linux /proc)."""
    assert hub.process is not None
    found = set()
    for task in os.listdir(f"/proc/{hub.process.pid}/task"):
        with open(f"/proc/{hub.process.pid}/task/{task}/children") as f:
            for pid in f.read().split():
                with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                    if b"spawn_main" in cmd.read():
                        found.add(int(pid))
    return found


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 4 * TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(POLL)


def serving(hub: HubProcess) -> bool:
    try:
        return httpx.get(hub.url + "/healthz", timeout=TIMEOUT).status_code == 200
    except httpx.TransportError:
        return False


def test_settings_need_redis_for_workers_and_cluster() -> None:
    with pytest.raises(BadRequest, match="--workers 3 needs --redis"):
        load(environ={"PUSHHUB_WORKERS": "3"})
    with pytest.raises(BadRequest, match="--redis-cluster needs --redis"):
        load(environ={"PUSHHUB_REDIS_CLUSTER": "1"})
    settings = load(environ={"PUSHHUB_WORKERS": "3", "PUSHHUB_REDIS": "redis://h:1/2"})
    assert (settings.workers, settings.backend_url) == (3, "redis://h:1/2")


def test_workers_are_refused_without_redis() -> None:
    result = subprocess.run([sys.executable, "-m", "pushhub", "serve", "--memory", "--workers", "2",
                             "--port", str(free_port())], capture_output=True, text=True, timeout=4 * TIMEOUT)
    assert result.returncode == 2
    assert "--workers 2 needs --redis" in result.stderr


async def test_workers_share_a_port_and_replace_a_killed_one(hub_factory: Callable[..., HubProcess],
                                                             redis_server: RedisServer) -> None:
    hub = hub_factory("--redis", redis_server.fresh_url(), "--workers", "2", backend=None)
    wait_for(lambda: len(workers_of(hub)) == 2)
    victim = min(workers_of(hub))
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(workers_of(hub) - {victim}) == 2)
    wait_for(lambda: serving(hub))  # the killed worker may have been the only one listening yet
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as c:
        streams = [await stack.enter_async_context(sse_stream(hub.url, ["w"])) for _ in range(6)]
        sent = await publish(c, "w", "t", "hello")
        for stream in streams:
            (event,) = await stream.events(1)
            assert event["id"] == sent["id"]
        assert hub.stop(signal.SIGTERM) == 0
        for stream in streams:
            last = await stream.next()
            assert last.event == "disconnect"
            assert orjson.loads(last.data)["reason"] == "shutdown"


def test_workers_stop_when_their_supervisor_is_killed(hub_factory: Callable[..., HubProcess],
                                                    redis_server: RedisServer) -> None:
    hub = hub_factory("--redis", redis_server.fresh_url(), "--workers", "2", backend=None)
    wait_for(lambda: len(workers_of(hub)) == 2)
    workers = workers_of(hub)
    assert hub.stop(signal.SIGKILL) == -signal.SIGKILL

    def gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(") ")[1].startswith("Z")  # a zombie left to init is gone too
        except FileNotFoundError:
            return True

    wait_for(lambda: all(gone(pid) for pid in workers))
    assert "shutdown complete" in hub.log()  # they stopped as on SIGTERM, streams told to reconnect


def test_workers_refuse_a_port_other_workers_hold(hub_factory: Callable[..., HubProcess],
                                                  redis_server: RedisServer) -> None:
    hub = hub_factory("--redis", redis_server.fresh_url(), "--workers", "2", backend=None)
    result = subprocess.run([sys.executable, "-m", "pushhub", "serve", "--redis", redis_server.fresh_url(),
                             "--workers", "2", "--port", str(hub.port)],
                            capture_output=True, text=True, timeout=4 * TIMEOUT)
    assert result.returncode == startup.ADDRESS
    assert f"--port {hub.port}: cannot listen (Address already in use)" in result.stderr
