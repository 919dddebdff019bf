"""The hub serves the browser client at a stable path, from files packaged with the hub."""

from __future__ import annotations

import subprocess
import sys
import tarfile
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


def setuptools(command: str, *args: str, cwd: Path = ROOT) -> None:
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", command, *args],
                   cwd=cwd, check=True, timeout=4 * TIMEOUT, capture_output=True)


def test_built_package_ships_the_client(tmp_path: Path) -> None:
    """What a non-editable install gets, from the source tree and from an sdist: pushhub/static, whose
    entries link to clients/js, holds real copies of the files; the only top-level package is pushhub."""
    setuptools("build_py", "--build-lib", str(tmp_path / "build"))
    setuptools("sdist", "--dist-dir", str(tmp_path / "dist"))
    (sdist,) = (tmp_path / "dist").glob("pushhub-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "sdist", filter="data")
    (unpacked,) = (tmp_path / "sdist").iterdir()
    assert sorted(path.name for path in (tmp_path / "build").iterdir()) == ["pushhub"]
    for static in (tmp_path / "build" / "pushhub" / "static", unpacked / "hub" / "pushhub" / "static"):
        for name in ("pushhub.js", "pushhub.d.ts"):
            assert not (static / name).is_symlink()
            assert (static / name).read_bytes() == (SOURCE / name).read_bytes()


def test_python_client_package_is_typed(tmp_path: Path) -> None:
    setuptools("build_py", "--build-lib", str(tmp_path), cwd=ROOT / "clients" / "python")
    assert (tmp_path / "pushhub_client" / "py.typed").exists()
    assert (tmp_path / "pushhub_client" / "_receiver.py").exists()
