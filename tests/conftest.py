from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from .redis_servers import RedisClusterServers, RedisServer, running
from .utils import TIMEOUT, HubProcess

BACKENDS = ["sqlite", "memory", "redis"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One throwaway redis-server for the session; each hub gets a database of its own."""
    server = RedisServer(str(tmp_path_factory.mktemp("redis")))
    with running(server):
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A local Redis Cluster of three masters for the session."""
    cluster = RedisClusterServers(str(tmp_path_factory.mktemp("cluster")))
    with running(cluster):
        yield cluster


def backend_args(backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> list[str]:
    if backend == "memory":
        return ["--memory"]
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")  # the data dir keeps only the pid file
        return ["--redis", server.fresh_url(), "--data-dir", str(tmp_path_factory.mktemp("pid"))]
    return ["--data-dir", str(tmp_path_factory.mktemp("data"))]


@pytest.fixture
def hub_factory(tmp_path_factory: pytest.TempPathFactory,
                request: pytest.FixtureRequest) -> Iterator[Callable[..., HubProcess]]:
    """Start hub processes; each is stopped at the end of the test. ``backend="redis"`` gives each
    hub a fresh database; pass ``--redis URL`` in ``args`` (and ``backend=None``) to share one."""
    started: list[HubProcess] = []

    def start(*args: str, backend: str | None = "sqlite", env: dict[str, str] | None = None) -> HubProcess:
        log = str(tmp_path_factory.mktemp("log") / "hub.log")
        chosen = backend_args(backend, tmp_path_factory, request) if backend else []
        hub = HubProcess([*chosen, *args], env=env or {}, log_path=log)
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
