from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from .utils import TIMEOUT, HubProcess

BACKENDS = ["sqlite", "memory"]


def backend_args(backend: str, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if backend == "memory":
        return ["--memory"]
    return ["--data-dir", str(tmp_path_factory.mktemp("data"))]


@pytest.fixture
def hub_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., HubProcess]]:
    """Start hub processes; each is stopped at the end of the test."""
    started: list[HubProcess] = []

    def start(*args: str, backend: str = "sqlite", env: dict[str, str] | None = None) -> HubProcess:
        log = str(tmp_path_factory.mktemp("log") / "hub.log")
        hub = HubProcess([*backend_args(backend, tmp_path_factory), *args], env=env or {}, log_path=log)
        started.append(hub)
        return hub.start()

    yield start
    for hub in started:
        if hub.process is not None and hub.process.poll() is None:
            hub.stop(9)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def hub(hub_factory: Callable[..., HubProcess], backend: str) -> HubProcess:
    return hub_factory(backend=backend)


@pytest.fixture
async def client(hub: HubProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as c:
        yield c
