"""The container deployment, run without a container engine: the processes deploy/compose.yaml
describes (Redis with its command, two hubs with the image's and the service's environment and the
image's entrypoint) started directly, on loopback ports; and the image's HEALTHCHECK command.

Only what a container's network and volume change is changed: the Redis host and the ports (each
process gets a free loopback port), the data directories (temporary ones), and the hubs listen on
127.0.0.1 instead of the image's 0.0.0.0. tests/test_image.py builds and runs the image itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .redis_servers import RedisServer
from .utils import TIMEOUT, HubProcess, SSEStream, free_port

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KEYS = {"PUSHHUB_ADMIN_KEYS": "compose-admin-key-of-32-bytes-or-more", "PUSHHUB_PUBLISHER_KEYS": "compose-publisher"}


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def dockerfile_instruction(name: str) -> list[str]:
    """The arguments of each ``name`` instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in dockerfile_instruction("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def substitute(value: str, environ: dict[str, str]) -> str:
    """Compose's ``${NAME:?message}`` and ``${NAME}``."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise AssertionError(f"compose needs {name}")
        return environ[name]
    return re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", one, value)


def healthcheck_command() -> list[str]:
    (args,) = dockerfile_instruction("HEALTHCHECK")
    return list(json.loads(args[args.index("CMD") + 3:].strip()))


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[RedisServer, list[HubProcess]]]:
    services = compose()["services"]
    redis_args = services["redis"]["command"][1:]
    assert {"--appendonly", "yes", "--appendfsync", "always"} <= set(redis_args), "AOF on, fsync every write"
    redis = RedisServer(str(tmp_path / "redis"), *redis_args).start()
    hubs: list[HubProcess] = []
    try:
        base = image_env()
        for name in ("hub1", "hub2"):
            service = services[name]
            assert service["command"] == ["serve"] and service["depends_on"]["redis"]["condition"] == "service_healthy"
            env = {**base, **{k: substitute(str(v), KEYS) for k, v in service["environment"].items()}}
            env["PUSHHUB_REDIS"] = env["PUSHHUB_REDIS"].replace("redis://redis:6379", redis.url)
            env.update(PUSHHUB_HOST="127.0.0.1", PUSHHUB_DATA_DIR=str(tmp_path / name))
            hub = HubProcess([], env=env, log_path=str(tmp_path / f"{name}.log"))
            hub.env["PUSHHUB_PORT"] = str(hub.port)
            hubs.append(hub.start())
        yield redis, hubs
    finally:
        for hub in hubs:
            hub.stop()
        redis.stop()


async def test_the_compose_processes_serve_together(deployment: tuple[RedisServer, list[HubProcess]]) -> None:
    redis, (hub1, hub2) = deployment
    assert redis.cli("CONFIG", "GET", "appendonly").split() == ["appendonly", "yes"]
    publisher = {"authorization": f"Bearer {KEYS['PUSHHUB_PUBLISHER_KEYS']}"}
    async with httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT, read=None), headers=publisher) as client, \
            client.stream("GET", hub2.url + "/v1/sse", params={"channel": "deployed"}) as response:
        assert response.status_code == 200
        for hub in (hub1, hub2):
            ready = await client.get(hub.url + "/readyz")
            assert ready.status_code == 200, ready.text
        stream = SSEStream(response)
        await stream.started()
        answer = await client.post(hub1.url + "/v1/channels/deployed/events", json={"type": "t", "data": 1})
        assert answer.status_code == 202
        message = await stream.next()
        stream._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stream._task
    assert json.loads(message.data)["data"] == 1, "published on one hub, delivered by the other"
    log = await asyncio.to_thread(Path(hub1.log_path or "").read_text)
    first_line = json.loads(log.splitlines()[0])
    assert "backend redis" in first_line["message"], "the image logs JSON"


def test_the_image_healthcheck_command(hub_factory: Any) -> None:
    hub = hub_factory()
    command = healthcheck_command()
    assert command[0] == "python"
    env = {**os.environ, "PUSHHUB_PORT": str(hub.port)}
    assert subprocess.run([sys.executable, *command[1:]], env=env, timeout=4 * TIMEOUT).returncode == 0
    env["PUSHHUB_PORT"] = str(free_port())
    assert subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True,
                          timeout=4 * TIMEOUT).returncode != 0
