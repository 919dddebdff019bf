"""Throwaway ``redis-server`` processes on free ports, started from the binaries."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator

from .utils import POLL, TIMEOUT, free_port


class RedisServer:
    """One ``redis-server`` without persistence, in its own directory."""

    def __init__(self, directory: str, *extra: str, port: int | None = None) -> None:
        self.directory = directory
        self.extra = extra
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.next_db = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def fresh_url(self) -> str:
        """A URL of a database no test used before (the server has many)."""
        self.next_db += 1
        return f"{self.url}/{self.next_db}"

    def start(self) -> RedisServer:
        os.makedirs(self.directory, exist_ok=True)
        with open(os.path.join(self.directory, "redis.log"), "ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.directory, "--databases", "10000", *self.extra],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        self.wait_ready()
        return self

    def cli(self, *args: str) -> str:
        result = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True,
                                timeout=4 * TIMEOUT, check=True)
        return result.stdout.strip()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 4 * TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, "redis-server exited"
            with contextlib.suppress(subprocess.CalledProcessError):
                if self.cli("ping") == "PONG":
                    return
            time.sleep(POLL)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=4 * TIMEOUT)

    def restart(self) -> None:
        """Stop and start again on the same port: without persistence, every key is gone."""
        self.stop()
        self.start()


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    while True:
        port = free_port()
        if port <= 55535:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


class RedisClusterServers:
    """A local Redis Cluster of three masters, no replicas."""

    def __init__(self, directory: str) -> None:
        self.nodes = [RedisServer(os.path.join(directory, f"node{i}"), "--cluster-enabled", "yes",
                                  "--cluster-node-timeout", "2000", port=cluster_port()) for i in range(3)]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisClusterServers:
        for node in self.nodes:
            node.start()
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       capture_output=True, check=True, timeout=8 * TIMEOUT)
        deadline = time.monotonic() + 8 * TIMEOUT
        while any("cluster_state:ok" not in n.cli("cluster", "info") for n in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not become ready")
            time.sleep(POLL)
        return self

    def flush(self) -> None:
        for node in self.nodes:
            node.cli("flushall")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def running(server: RedisServer | RedisClusterServers) -> Iterator[None]:
    server.start()
    try:
        yield
    finally:
        server.stop()
