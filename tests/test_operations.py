"""Running the hub as an operator does: JSON logs, the start-up line, start-up failures with their
exit codes, readiness."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pushhub import __version__, logs, startup
from pushhub.config import load
from pushhub.readiness import Readiness

from .redis_servers import RedisServer
from .utils import TIMEOUT, HubProcess, ReadyzProbe, free_port, sse_stream


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    out = []
    for line in lines:
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    return out


def test_json_logs_cover_startup_access_lines_and_shutdown(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory("--log-format", "json", "--access-log", "--admin-key", "k" * 32)
    httpx.get(hub.url + "/readyz?probe=1", timeout=TIMEOUT)
    hub.stop()
    lines = json_lines(Path(hub.log_path or "").read_text())
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    first = lines[0]["message"]
    for part in (f"pushhub {__version__}", f"http://127.0.0.1:{hub.port}", "backend sqlite", "auth admin-keys",
                 f"http://127.0.0.1:{hub.port}/dashboard"):
        assert part in first, (part, first)
    access = [line for line in lines if line["logger"] == "pushhub.access" and line["path"] == "/readyz?probe=1"]
    assert len(access) == 1 and access[0]["status"] == 200 and access[0]["method"] == "GET"
    assert any(line["message"] == "shutdown complete" for line in lines)


def test_text_stays_the_default(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory()
    hub.stop()
    first = Path(hub.log_path or "").read_text().splitlines()[0]
    assert not first.startswith("{") and "INFO pushhub pushhub" in first


def test_the_json_formatter_puts_tracebacks_warnings_and_extras_in_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("pushhub.test").exception("it failed", extra={"channel": "orders"})
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    finally:
        logging.captureWarnings(False)
        logging.getLogger().handlers.clear()
    failed, warned = json_lines(capsys.readouterr().err)
    assert failed["level"] == "error" and failed["channel"] == "orders"
    assert failed["traceback"].startswith("Traceback") and "ValueError: boom" in failed["traceback"]
    assert warned["logger"] == "py.warnings" and "deprecated thing" in warned["message"]


def test_json_logs_of_workers(tmp_path: Any, redis_server: RedisServer) -> None:
    log = tmp_path / "hub.log"
    hub = HubProcess(["--workers", "2", "--redis", redis_server.fresh_url(), "--log-format", "json"],
                     log_path=str(log)).start()
    deadline = time.monotonic() + 4 * TIMEOUT
    while log.read_text().count("Application startup complete.") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    hub.stop()
    lines = json_lines(log.read_text())
    assert len({line["pid"] for line in lines}) == 3, "the supervisor and both workers"
    assert "workers 2" in lines[0]["message"]


# Start-up failures ------------------------------------------------------------------------------

def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pushhub", "serve", *args], capture_output=True, text=True,
                          timeout=8 * TIMEOUT, env={**os.environ, **(env or {})})


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_an_unusable_data_dir_is_one_line_and_exit_3(tmp_path: Any) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = serve("--port", str(free_port()), "--data-dir", str(tmp_path / "file"))
    assert result.returncode == startup.STORAGE
    assert "--data-dir" in one_line(result)


def test_a_database_that_is_not_one_is_exit_3(tmp_path: Any) -> None:
    (tmp_path / "pushhub.db").write_bytes(b"garbage" * 1000)
    result = serve("--port", str(free_port()), "--data-dir", str(tmp_path))
    assert result.returncode == startup.STORAGE
    assert "not a database" in one_line(result)


def test_an_unreachable_redis_is_one_json_line_and_exit_4() -> None:
    result = serve("--port", str(free_port()), "--redis", f"redis://127.0.0.1:{free_port()}",
                   env={"PUSHHUB_LOG_FORMAT": "json"})
    assert result.returncode == startup.REDIS
    line = orjson.loads(one_line(result))
    assert "--redis" in line["message"] and line["exit_code"] == startup.REDIS


def test_a_port_in_use_is_one_line_and_exit_5(tmp_path: Any) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        result = serve("--port", str(holder.getsockname()[1]), "--data-dir", str(tmp_path))
    assert result.returncode == startup.ADDRESS
    assert "--port" in one_line(result) and "in use" in one_line(result)


@pytest.mark.parametrize(("args", "flag"), [(["--log-format", "xml"], "--log-format"),
                                            (["--workers", "two"], "--workers")])
def test_bad_configuration_is_one_line_naming_the_flag_and_exit_2(args: list[str], flag: str) -> None:
    result = serve("--port", str(free_port()), "--memory", *args)
    assert result.returncode == startup.USAGE
    assert flag in one_line(result)


# Readiness ------------------------------------------------------------------------------------

async def test_readiness_on_plain_values(tmp_path: Any) -> None:
    healthy = True

    async def storage() -> bool:
        return healthy

    readiness = Readiness(storage, str(tmp_path))
    assert set((await readiness.checks()).values()) == {"ok"}
    healthy = False
    assert (await readiness.checks())["storage"] == "unavailable"
    healthy = True
    readiness.drain()
    assert (await readiness.checks())["draining"] == "draining"


async def test_readyz_answers_503_while_a_sigterm_drains(tmp_path: Any) -> None:
    hub = HubProcess(["--data-dir", str(tmp_path / "data")], log_path=str(tmp_path / "hub.log")).start()
    assert hub.process is not None
    try:
        async with sse_stream(hub.url, ["held"]) as stream, ReadyzProbe.open(hub.port) as probe:
            hub.process.send_signal(signal.SIGTERM)
            goodbye = await stream.next()  # the drain has begun: streams are told to reconnect
            assert goodbye.event == "disconnect"
            status, answer = await probe.finish()
            assert hub.process.poll() is None  # still draining: it waits for the probe's connection
        assert status == 503 and answer["status"] == "unready", answer
        assert answer["checks"]["draining"] == "draining" and answer["checks"]["storage"] == "ok", answer
        assert await asyncio.to_thread(hub.process.wait, 4 * TIMEOUT) == 0
    finally:
        hub.stop()


def test_readyz_follows_redis(tmp_path: Any) -> None:
    server = RedisServer(str(tmp_path)).start()
    hub = HubProcess(["--redis", server.url]).start()
    try:
        ready = httpx.get(hub.url + "/readyz", timeout=TIMEOUT)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        server.stop()
        unready = httpx.get(hub.url + "/readyz", timeout=4 * TIMEOUT)
        assert unready.status_code == 503
        assert unready.json()["checks"]["storage"] != "ok"
        assert httpx.get(hub.url + "/healthz", timeout=4 * TIMEOUT).status_code == 503
    finally:
        hub.stop()
        server.stop()


def test_the_banner_names_backend_auth_and_urls() -> None:
    settings = load(environ={"PUSHHUB_REDIS": "redis://:hunter2@127.0.0.1:6390/2", "PUSHHUB_PUBLISHER_KEYS": "a,b"})
    line = startup.banner(settings)
    assert "backend redis redis://:***@127.0.0.1:6390/2" in line and "auth publisher-keys" in line
    assert "hunter2" not in line
    assert "http://127.0.0.1:8000/dashboard" in line and "ws://127.0.0.1:8000/v1/ws" in line
