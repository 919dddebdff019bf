"""Hub restarts behind Debian's nginx, configured with exactly the block the README shows: a plain
EventSource in Chromium and Node's ``eventsource`` package each receive every event once.

While the hub is down nginx cannot connect; the README's block answers EventSource's reconnects
then with ``200`` and ``retry: 1000`` instead of a ``502`` (which would end a plain EventSource for
good), and each client resumes with its ``Last-Event-ID`` once the hub is back. The test waits, in
each restart, until nginx has answered both clients from ``@sse_retry`` before starting the hub
again, so every restart exercises that path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from .browser_utils import WAIT_MS, available, chromium
from .utils import TIMEOUT, HubProcess, free_port

NGINX = "/usr/sbin/nginx"
ROOT = Path(__file__).resolve().parent.parent
NODE_FOLLOW = Path(__file__).resolve().parent / "node" / "follow.mjs"
RESTARTS = 3
PER_ROUND = 10

UNAVAILABLE = available() or (None if os.access(NGINX, os.X_OK) else f"needs Debian's nginx at {NGINX}") or (
    None if (NODE_FOLLOW.parent / "node_modules" / "eventsource").is_dir()
    else "needs `npm ci` in tests/node (scripts/test runs it)")
if UNAVAILABLE:
    pytest.skip(UNAVAILABLE, allow_module_level=True)


def readme_block() -> str:
    """The nginx configuration block of the README's "Behind nginx" section, as written there."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Behind nginx"):]
    match = re.search(r"```nginx\n(.*?)```", section, re.S)
    assert match is not None, "the README's 'Behind nginx' section has no nginx block"
    return match.group(1)


def nginx_conf(tmp: Path, hub_port: int, port: int) -> str:
    """The README's block with its two ports changed, inside the few lines nginx needs to run it
    unprivileged in ``tmp`` (and a log of which answers came from ``@sse_retry``)."""
    block = readme_block()
    assert block.count("127.0.0.1:8000") >= 1 and block.count("listen 80;") == 1
    block = block.replace("127.0.0.1:8000", f"127.0.0.1:{hub_port}").replace("listen 80;", f"listen 127.0.0.1:{port};")
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"    {kind}_temp_path {tmp}/{kind};" for kind in kinds)
    return f"""daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
{"user root;" if os.geteuid() == 0 else ""}
events {{ worker_connections 256; }}
http {{
    log_format retries '$status $upstream_status $arg_client';
    access_log {tmp}/access.log retries;
{temp}
{block}
}}
"""


@contextlib.contextmanager
def nginx(tmp: Path, hub_port: int) -> Iterator[str]:
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(tmp, hub_port, port))
    process = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 4 * TIMEOUT
        while True:
            assert process.poll() is None, (tmp / "error.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
                break
            assert time.monotonic() < deadline, "nginx did not listen"
            time.sleep(TIMEOUT / 100)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=4 * TIMEOUT)


def retries_answered(tmp: Path, client: str) -> int:
    """How often nginx answered ``client`` from ``@sse_retry`` (upstream 502, answer 200)."""
    log = tmp / "access.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(1 for line in lines if line == f"200 502 {client}")


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 4 * TIMEOUT
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(TIMEOUT / 100)


class NodeFollower:
    """Node's ``eventsource`` package following one URL (tests/node/follow.mjs)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(orjson.loads(line))

    def seqs(self) -> list[int]:
        return [line["message"]["data"]["seq"] for line in self.lines if "message" in line]

    @property
    def closed(self) -> bool:
        return any("closed" in line for line in self.lines)


@contextlib.asynccontextmanager
async def node_follower(url: str) -> AsyncIterator[NodeFollower]:
    process = await asyncio.create_subprocess_exec("node", str(NODE_FOLLOW), url, stdout=asyncio.subprocess.PIPE)
    follower = NodeFollower(process)
    try:
        yield follower
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await asyncio.wait_for(process.wait(), 4 * TIMEOUT)
        await asyncio.wait_for(follower.task, 4 * TIMEOUT)


BROWSER_FOLLOW = """(url) => {
    window.seqs = [];
    window.source = new EventSource(url);
    window.source.onmessage = event => window.seqs.push(JSON.parse(event.data).data.seq);
}"""
BROWSER_GAVE_UP = "window.source.readyState === EventSource.CLOSED"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as browser:
        yield browser


async def test_every_event_once_across_restarts_behind_nginx(browser: Any, tmp_path: Path) -> None:
    hub = HubProcess(["--data-dir", str(tmp_path / "data"), "--sse-retry-ms", "200"],
                     log_path=str(tmp_path / "hub.log")).start()
    try:
        with nginx(tmp_path, hub.port) as proxy:
            await restarts_lose_no_event(browser, hub, proxy, tmp_path)
    finally:
        hub.stop()


async def restarts_lose_no_event(browser: Any, hub: HubProcess, proxy: str, tmp: Path) -> None:
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        start = (await client.get("/v1/channels/feed")).json()["cursor"]
        stream = f"/v1/sse?channel=feed&lastEventId={start}&client="

        page = await browser.new_page()

        async def fulfil(route: Any) -> None:
            await route.fulfill(body="<!doctype html><title>follow</title>", content_type="text/html")

        await page.route(f"{proxy}/page.html", fulfil)
        await page.goto(f"{proxy}/page.html", timeout=WAIT_MS)
        await page.evaluate(BROWSER_FOLLOW, stream + "chromium")
        async with node_follower(proxy + stream + "node") as node:
            published = 0

            async def both_have_everything() -> bool:
                in_browser = await page.evaluate("window.seqs.length")
                return bool(in_browser >= published and len(node.seqs()) >= published)

            for restart in range(RESTARTS + 1):
                for _ in range(PER_ROUND):
                    published += 1
                    answer = await client.post("/v1/channels/feed/events", json={"type": "tick",
                                                                                "data": {"seq": published}})
                    assert answer.status_code == 202, answer.text
                await until(both_have_everything, f"{published} events in both clients (round {restart})")
                if restart == RESTARTS:
                    break
                answered = {c: retries_answered(tmp, c) for c in ("chromium", "node")}
                await asyncio.to_thread(hub.stop)

                async def both_retried_or_gave_up(before: dict[str, int] = answered) -> bool:
                    closed = {"chromium": await page.evaluate(BROWSER_GAVE_UP), "node": node.closed}
                    return all(closed[c] or retries_answered(tmp, c) > n for c, n in before.items())

                await until(both_retried_or_gave_up, "nginx to answer both clients from @sse_retry")
                assert not await page.evaluate(BROWSER_GAVE_UP), f"Chromium's EventSource gave up (restart {restart})"
                assert not node.closed, f"Node's EventSource gave up (restart {restart})"
                await asyncio.to_thread(hub.start)

            expected = list(range(1, published + 1))
            assert await page.evaluate("window.seqs") == expected
            assert node.seqs() == expected
