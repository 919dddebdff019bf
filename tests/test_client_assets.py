"""The hub serves the browser client at a stable path, from files packaged with the hub."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from .utils import TIMEOUT, HubProcess

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "clients" / "js"


async def test_hub_serves_the_client_module(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory(backend="memory")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        module = await client.get("/v1/client/pushhub.js")
        assert module.status_code == 200
        assert module.headers["content-type"].startswith("text/javascript")
        assert module.headers["access-control-allow-origin"] == "*"
        assert module.content == (SOURCE / "pushhub.js").read_bytes()
        cached = await client.get("/v1/client/pushhub.js", headers={"if-none-match": module.headers["etag"]})
        assert cached.status_code == 304
        types = await client.get("/v1/client/pushhub.d.ts")
        assert types.status_code == 200 and types.content == (SOURCE / "pushhub.d.ts").read_bytes()
        missing = await client.get("/v1/client/other.js")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_built_package_ships_the_client(tmp_path: Path) -> None:
    """What a non-editable install (a wheel) gets: setuptools' build_py copies hub/static, whose
    entries link to clients/js, as real files."""
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                    "--build-lib", str(tmp_path)], cwd=ROOT, check=True, timeout=4 * TIMEOUT,
                   capture_output=True)
    for name in ("pushhub.js", "pushhub.d.ts"):
        built = tmp_path / "hub" / "static" / name
        assert not built.is_symlink()
        assert built.read_bytes() == (SOURCE / name).read_bytes()
