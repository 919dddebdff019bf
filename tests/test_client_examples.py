"""The Python client's examples (clients/python/examples) run as documented, against a real hub."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from .test_webhook_receiver import reference_signature, serve
from .utils import TIMEOUT, HubProcess

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "python"
EXAMPLES = CLIENT / "examples"


def run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CLIENT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=4 * TIMEOUT, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def run_async(*args: str) -> str:
    return await asyncio.to_thread(run, *args)


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_publish_subscribe_history_examples(hub_factory: Callable[..., HubProcess], transport: str) -> None:
    hub = hub_factory(backend="memory")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        start = (await client.get("/v1/channels/orders")).json()["cursor"]
    cursor = start if transport == "sse" else json.dumps({"orders": start})
    ws = ["--ws"] if transport == "ws" else []

    published = await run_async(str(EXAMPLES / "publish.py"), hub.url, "orders")
    assert "published evt_" in published and "batch at" in published

    first = await run_async(str(EXAMPLES / "subscribe.py"), hub.url, "orders", *ws, "--cursor", cursor,
                            "--count", "2")
    lines = first.splitlines()
    assert lines[0] == 'orders #1 order.created {"order": 42, "total": "19.90"}'
    assert lines[1] == 'orders #2 order.paid {"order": 42}'
    resume = lines[2].removeprefix("resume with: --cursor '").removesuffix("'")

    rest = await run_async(str(EXAMPLES / "subscribe.py"), hub.url, "orders", *ws, "--cursor", resume,
                           "--count", "1")
    assert rest.splitlines()[0] == 'orders #3 order.shipped {"order": 42}'

    history = (await run_async(str(EXAMPLES / "history.py"), hub.url, "orders")).splitlines()
    assert [line.split()[0] for line in history] == ["#1", "#2", "#3"]


def test_verify_example() -> None:
    lines = run(str(EXAMPLES / "verify.py")).splitlines()
    assert lines[0] == "(200, \"accepted msg_p5jXN8AQM9LWM0D4loKWxJek: {'test': 2432232314}\")"
    assert lines[1].startswith("(401, ")
    assert lines[2].startswith("(400, ") and "old" in lines[2]


async def test_receiver_example(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    monkeypatch.setenv("PUSHHUB_WEBHOOK_SECRET", secret)
    monkeypatch.delenv("REDIS_URL", raising=False)
    receiver = load("receiver")
    now = int(time.time())
    body = '{"type": "order.created", "data": {"order": 42}}'
    signature = reference_signature(secret, "msg_1", now, body.encode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": signature}
    async with serve(receiver.app) as url, httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
        first = await http.post("/webhooks/pushhub", content=body, headers=headers)
        again = await http.post("/webhooks/pushhub", content=body, headers=headers)
        forged = await http.post("/webhooks/pushhub", content=body.replace("42", "43"), headers=headers)
    assert first.json() == {"ok": True}
    assert again.json() == {"status": "duplicate"}
    assert forged.status_code == 401
    assert receiver.processed == ["msg_1"]
