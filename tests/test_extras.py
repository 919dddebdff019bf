"""The hub without its optional extras: the core runs with neither ``redis`` nor ``cryptography``
importable, and a feature configured without its extra fails with one line naming the extra.

The hub processes run with a directory first on ``PYTHONPATH`` whose ``redis`` and ``cryptography``
packages raise ``ModuleNotFoundError`` on import, as they do when the packages are not installed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushhub import extras
from pushhub.errors import MissingExtra, PushHubError

from .utils import TIMEOUT, HubProcess, publish, sse_stream

SECRET = "hs256-secret-for-the-extras-tests!!"
KEY = "publisher-key-for-the-extras-tests"


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    shadow = tmp_path_factory.mktemp("without-extras")
    for name in ("redis", "cryptography"):
        (shadow / name).mkdir()
        (shadow / name / "__init__.py").write_text(
            f'raise ModuleNotFoundError("No module named {name!r}", name={name!r})\n')
    return {"PYTHONPATH": str(shadow)}


def serve_fails(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pushhub", "serve", "--publisher-key", KEY, *args],
                          env=env, capture_output=True, text=True, timeout=4 * TIMEOUT)
    assert done.returncode == 2, done.stderr
    return done.stderr


def test_the_shadow_hides_the_extras(without_extras: dict[str, str]) -> None:
    code = "import redis"
    done = subprocess.run([sys.executable, "-c", code], env=without_extras, capture_output=True, text=True,
                          timeout=4 * TIMEOUT)
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'redis'" in done.stderr


async def test_core_hub_runs_without_extras(without_extras: dict[str, str], tmp_path: Path) -> None:
    for storage in (["--memory"], ["--data-dir", str(tmp_path)]):
        hub = HubProcess([*storage, "--jwt-secret", SECRET], env=without_extras).start()
        try:
            token = jwt.encode({"exp": time.time() + 60, "pushhub": {"subscribe": ["orders"], "publish": ["orders"]}},
                               SECRET, algorithm="HS256")
            async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT,
                                         headers={"authorization": f"Bearer {token}"}) as client:
                refused = await client.post("/v1/channels/other/events", json={"type": "t"})
                assert refused.status_code == 403
                published = await publish(client, "orders", data={"n": 1})
            assert published["offset"] == 1
        finally:
            hub.stop()


async def test_sse_without_extras(without_extras: dict[str, str]) -> None:
    hub = HubProcess(["--memory"], env=without_extras).start()
    try:
        async with sse_stream(hub.url, ["orders"]) as stream, httpx.AsyncClient(base_url=hub.url,
                                                                                 timeout=TIMEOUT) as client:
            await publish(client, "orders", data={"n": 1})
            [event] = await stream.events(1)
        assert event["data"] == {"n": 1}
    finally:
        hub.stop()


def test_redis_without_its_extra_is_one_line(without_extras: dict[str, str]) -> None:
    stderr = serve_fails(without_extras, "--redis", "redis://127.0.0.1:1/0")
    assert stderr == "pushhub: --redis needs the 'redis' extra: pip install 'pushhub[redis]'\n"


def test_public_key_without_its_extra_is_one_line(without_extras: dict[str, str], tmp_path: Path) -> None:
    pem = tmp_path / "es256.pem"
    pem.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    stderr = serve_fails(without_extras, "--memory", "--jwt-public-key", str(pem))
    assert stderr == ("pushhub: --jwt-public-key (RS256/ES256 tokens) needs the 'jwt-rsa' extra: "
                      "pip install 'pushhub[jwt-rsa]'\n")


def test_needs_turns_only_the_extras_modules_into_missing_extra() -> None:
    with pytest.raises(MissingExtra) as caught, extras.needs("redis", "--redis"):
        raise ModuleNotFoundError("No module named 'redis.asyncio'", name="redis.asyncio")
    assert caught.value.message == "--redis needs the 'redis' extra: pip install 'pushhub[redis]'"
    assert isinstance(caught.value, PushHubError)
    with pytest.raises(ModuleNotFoundError), extras.needs("redis", "--redis"):
        raise ModuleNotFoundError("No module named 'msgpack'", name="msgpack")
