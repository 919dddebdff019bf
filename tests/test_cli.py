"""The pushhub command against a real hub."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable

import httpx
import orjson

from .utils import TIMEOUT, HubProcess, free_port
from .webhook_utils import Reply, receiver


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pushhub", *args], capture_output=True, text=True, timeout=4 * TIMEOUT)


async def test_publish_and_listen_resume_across_a_restart(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory("--publisher-key", "k")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        start = (await client.get("/v1/channels/cli", headers={"authorization": "Bearer k"})).json()["cursor"]
    listener = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pushhub", "listen", "cli", "--url", hub.url, "--key", "k", "--cursor", start,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert listener.stdout is not None
    try:
        lines: list[dict[str, object]] = []
        for n in range(3):
            result = await asyncio.to_thread(_run, "publish", "cli", "--type", "t", "--data", str(n),
                                             "--url", hub.url, "--key", "k")
            assert result.returncode == 0, result.stderr
            assert orjson.loads(result.stdout)["offset"] == n + 1
            lines.append(orjson.loads(await asyncio.wait_for(listener.stdout.readline(), TIMEOUT)))
            if n == 1:
                await asyncio.to_thread(hub.restart)
        assert [line["event"]["data"] for line in lines] == [0, 1, 2]
        assert [line["cursor"] for line in lines] == [f"{line['event']['epoch']}.{line['event']['offset']}"
                                                      for line in lines]
    finally:
        listener.terminate()
        await listener.wait()
    assert listener.stderr is not None
    assert f"last cursor {lines[-1]['cursor']}" in (await listener.stderr.read()).decode()


async def test_publish_reports_errors(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory("--publisher-key", "k")
    denied = await asyncio.to_thread(_run, "publish", "c", "--type", "t", "--url", hub.url)
    assert denied.returncode == 1 and denied.stdout == ""
    assert denied.stderr.startswith("pushhub: 401 unauthorized: ") and len(denied.stderr.splitlines()) == 1
    bad = await asyncio.to_thread(_run, "publish", "c", "--type", "t", "--data", "{nope", "--url", hub.url)
    assert bad.returncode == 2 and "JSON" in bad.stderr
    gone = await asyncio.to_thread(_run, "publish", "c", "--type", "t", "--url", f"http://127.0.0.1:{free_port()}")
    assert gone.returncode == 6 and gone.stderr.startswith("pushhub: cannot reach ")


async def test_listen_retries_a_503_with_backoff_and_stops_when_told() -> None:
    stream = (b'id: e1.7\ndata: {"id":"evt_1","channel":"c","type":"t","data":1}\n\n'
              b'event: disconnect\ndata: {"code":4501,"reason":"unauthorized","reconnect":false}\n\n')
    script = [Reply(503, body=b'{"error":{"code":"unavailable","message":"storage is down"}}'),
              Reply(200, headers={"content-type": "text/event-stream"}, body=stream)]
    async with receiver(lambda n: script[min(n, 1)]) as hub:
        result = await asyncio.to_thread(_run, "listen", "c", "--url", f"http://127.0.0.1:{hub.port}")
    assert [r.headers.get("last-event-id") for r in hub.requests] == [None, None]
    assert result.returncode == 1
    assert [orjson.loads(line) for line in result.stdout.splitlines()] == [
        {"cursor": "e1.7", "event": {"id": "evt_1", "channel": "c", "type": "t", "data": 1}}]
    assert "pushhub: 503 unavailable: storage is down; retrying in 0.5s" in result.stderr
    assert result.stderr.splitlines()[-1] == "pushhub: last cursor e1.7 (resume with --cursor e1.7)"
