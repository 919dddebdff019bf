"""What the benchmarks share: cheap raw-socket subscribers and publishers, generator worker processes,
the hub process under test and its /proc readings.

The subscribers are plain asyncio protocols on uvloop, with no HTTP or WebSocket library: a
subscriber counts frames and pulls the offset and the publish timestamp out of them with a few
``bytes.find`` calls, so that the generator costs less CPU than the hub it measures. Every event published
by the benchmarks carries ``{"t": <time.monotonic() at publish>}`` as its data; ``CLOCK_MONOTONIC``
is shared by every process on the machine, so the receiving process computes the latency.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any, cast

import uvloop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the hub under test is this checkout's
RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results")

# Latency histogram: 0.1 ms buckets up to 30 s (the last bucket collects everything slower).
BUCKET_S = 1e-4
BUCKETS = 300_000

# Frames are picked apart with bytes.find, which is three times cheaper than one regular expression.
_TIME = b'"data":{"t":'
_NUMBER = re.compile(rb"[0-9.]+")



def add_hub_arguments(parser: argparse.ArgumentParser, *, pid_use: str) -> None:
    """The options every load benchmark shares: which hub, how it runs, and whether to save."""
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--storage", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--hub-arg", action="append", default=[], help="extra argument for 'hub serve'")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness for the hub and the generator, e.g. -10 to keep other work on a "
                             "shared machine from dominating the figures (needs root)")
    parser.add_argument("--url", default=None, help="benchmark a running hub instead of starting one")
    parser.add_argument("--pid", type=int, default=None, help=f"PID of the hub at --url, for {pid_use}")
    parser.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")

def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def prioritise(pids: list[int | None], niceness: int) -> None:
    """Give the hub and the generator a scheduling priority over the rest of a shared machine
    (a negative niceness needs root); 0 leaves them alone."""
    if niceness:
        for pid in pids:
            if pid is not None:
                os.setpriority(os.PRIO_PROCESS, pid, niceness)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_channel(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# The hub under test ---------------------------------------------------------------------------


class Hub:
    """A ``python -m pushhub serve`` process on a free loopback port (memory or SQLite log), or an
    already running hub given by URL (then its PID, if known, enables the /proc readings)."""

    def __init__(self, url: str | None = None, *, storage: str = "memory", pid: int | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.storage = storage
        self.pid = pid
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.data_dir: str | None = None
        if url is None:
            self.port = free_port()
            self.host = "127.0.0.1"
        else:
            hostport = url.split("://", 1)[-1].rstrip("/")
            host, _, port = hostport.rpartition(":")
            self.host, self.port = host, int(port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Hub:
        if self.pid is not None or self.process is not None:
            return self
        args = [sys.executable, "-m", "pushhub", "serve", "--port", str(self.port), *self.extra_args]
        if self.storage == "memory":
            args.append("--memory")
        else:
            self.data_dir = tempfile.mkdtemp(prefix="pushhub-bench-")
            args += ["--data-dir", self.data_dir]
        self.process = subprocess.Popen(args, cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.process.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=5) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("hub did not become healthy")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def cpu_seconds(self) -> tuple[float, float] | None:
        """User and system CPU time of the hub process so far."""
        if self.pid is None:
            return None
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def rss_kib(self) -> int | None:
        if self.pid is None:
            return None
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None


def machine_facts() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT, check=False).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "loadavg_start": os.getloadavg()[0],
    }


def save_result(name: str, record: dict[str, Any]) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, name + ".jsonl")
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    return path


# Subscribers ----------------------------------------------------------------------------------


class Stats:
    """What one generator process measured, over all its subscribers."""

    def __init__(self) -> None:
        self.histogram = [0] * BUCKETS
        self.last_receive = 0.0


class Subscriber(asyncio.Protocol):
    """One subscription. ``last`` is the highest offset received; gaps count as lost, repeats as
    duplicated; ``ready`` is set once the hub has confirmed the subscription."""

    pattern: re.Pattern[bytes]

    def __init__(self, stats: Stats, request: bytes) -> None:
        self.stats = stats
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last = 0
        self.received = 0
        self.lost = 0
        self.duplicated = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the subscription was confirmed"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _headers(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
        if self.expected_status not in status:
            self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
            assert self.transport is not None
            self.transport.close()
            return False
        del self.buffer[: end + 4]
        self.upgraded = True
        return True

    expected_status = b" 200 "

    def record(self, offset: int, sent: float, now: float) -> None:
        last = self.last
        if offset == last + 1:
            self.last = offset
        elif offset <= last:
            self.duplicated += 1
        else:
            self.lost += offset - last - 1
            self.last = offset
        self.received += 1
        index = int((now - sent) / BUCKET_S)
        self.stats.histogram[index if 0 <= index < BUCKETS else BUCKETS - 1] += 1


class SSESubscriber(Subscriber):
    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded and not self._headers():
            return
        if not self.ready.done():
            if b"\nid: " not in buffer and not buffer.startswith(b"id: "):
                return
            self.ready.set_result(time.monotonic())
        limit = buffer.rfind(b"\n\n")
        if limit < 0:
            return
        now = time.monotonic()
        find, pos = buffer.find, 0
        while (start := find(b"id: ", pos, limit)) >= 0:
            eol = find(b"\n", start, limit)
            pos = eol
            if not buffer.startswith(b"\ndata: ", eol):
                continue  # the preamble, or a control event
            offset = int(buffer[find(b".", start, eol) + 1 : eol])
            number = _NUMBER.match(buffer, find(_TIME, eol, limit) + len(_TIME))
            assert number is not None
            self.record(offset, float(number[0]), now)
            pos = number.end()
        self.stats.last_receive = now
        del buffer[: limit + 2]


class WSSubscriber(Subscriber):
    expected_status = b" 101 "

    def __init__(self, stats: Stats, request: bytes, subscribe: bytes) -> None:
        super().__init__(stats, request)
        self.subscribe = subscribe

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            if not self._headers():
                return
            assert self.transport is not None
            self.transport.write(self.subscribe)
        now = time.monotonic()
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            length, head = buffer[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = (buffer[pos + 2] << 8) | buffer[pos + 3], 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > size:
                break
            opcode = buffer[pos] & 0x0F
            if opcode == 1:
                if buffer.startswith(b'{"op":"event"', pos + head):
                    cursor = buffer.find(b'"cursor":"', pos + head, end)
                    dot = buffer.find(b".", cursor, end)
                    quote = buffer.find(b'"', dot, end)
                    number = _NUMBER.match(buffer, buffer.find(_TIME, quote, end) + len(_TIME))
                    assert number is not None
                    self.record(int(buffer[dot + 1 : quote]), float(number[0]), now)
                    self.stats.last_receive = now
                elif not self.ready.done() and buffer.find(b'"op":"subscribed"', pos + head, end) >= 0:
                    self.ready.set_result(now)
            elif opcode == 9 and self.transport is not None:
                self.transport.write(ws_client_frame(bytes(buffer[pos + head : end]), opcode=0xA))
            elif opcode == 8 and self.transport is not None:
                self.transport.close()
            pos = end
        del buffer[:pos]


def ws_client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A client frame; the all-zero mask leaves the payload as is (servers do not check the key)."""
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, 0x80 | length])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


def sse_request(host: str, port: int, channel: str) -> bytes:
    return (f"GET /v1/sse?channel={channel} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n").encode()


def ws_request(host: str, port: int) -> bytes:
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    return (f"GET /v1/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: pushhub.json\r\n\r\n").encode()


async def open_subscriber(stats: Stats, transport: str, host: str, port: int, channel: str) -> Subscriber:
    loop = asyncio.get_running_loop()
    sub: Subscriber
    if transport == "sse":
        request = sse_request(host, port, channel)
        _, sub = await loop.create_connection(lambda: SSESubscriber(stats, request), host, port)
    else:
        subscribe = ws_client_frame(b'{"op":"subscribe","id":1,"channel":"%s"}' % channel.encode())
        request = ws_request(host, port)
        _, sub = await loop.create_connection(lambda: WSSubscriber(stats, request, subscribe), host, port)
    return sub


# Publishing -----------------------------------------------------------------------------------


class HttpClient(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client for one request at a time (the publisher's side)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.length = -1
        self.status = 0

    @classmethod
    async def open(cls, host: str, port: int) -> HttpClient:
        _, client = await asyncio.get_running_loop().create_connection(cls, host, port)
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("publisher connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.length < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            self.status = int(head[9:12])
            self.length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            del self.buffer[: end + 4]
        if len(self.buffer) >= self.length and self.waiter is not None:
            body = bytes(self.buffer[: self.length])
            del self.buffer[: self.length]
            self.length = -1
            self.waiter.set_result((self.status, body))

    async def post(self, path: str, body: bytes, headers: str = "") -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(
            f"POST {path} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def events_body(count: int, pad: bytes = b"") -> bytes:
    """A publish body whose events carry the time of publishing."""
    now = b"%.6f" % time.monotonic()
    event = b'{"type":"bench.tick","data":{"t":%s%s}}' % (now, pad)
    if count == 1:
        return event
    return b'{"events":[%s]}' % b",".join([event] * count)


def last_offset(body: bytes) -> int:
    reply = json.loads(body)
    return int((reply["events"][-1] if "events" in reply else reply)["offset"])


# Generator worker processes -------------------------------------------------------------------


@dataclass
class WorkerSpec:
    transport: str
    host: str
    port: int
    channel: str
    count: int
    concurrency: int = 200
    extra: dict[str, Any] = field(default_factory=dict)


def worker_main(pipe: Pipe, spec: WorkerSpec) -> None:
    raise_fd_limit()
    uvloop.run(_worker(pipe, spec))


async def _worker(pipe: Pipe, spec: WorkerSpec) -> None:
    """Connect ``spec.count`` subscribers when told to, then count what arrives; the parent drives
    each step over ``pipe``: ``connect`` → ``finish`` (the last published offset) → ``close``."""
    loop = asyncio.get_running_loop()
    stats = Stats()
    subs: list[Subscriber] = []

    async def receive() -> Any:
        return await loop.run_in_executor(None, pipe.recv)

    command = await receive()
    assert command == "connect"
    gate = asyncio.Semaphore(spec.concurrency)
    failures: list[str] = []

    async def connect_one() -> float | None:
        async with gate:
            started = time.monotonic()
            try:
                sub = await open_subscriber(stats, spec.transport, spec.host, spec.port, spec.channel)
                subs.append(sub)
                ready = await asyncio.wait_for(sub.ready, 60)
            except (OSError, TimeoutError) as exc:
                failures.append(repr(exc))
                return None
            return ready - started

    began = time.monotonic()
    delays = await asyncio.gather(*(connect_one() for _ in range(spec.count)))
    done = time.monotonic()
    pipe.send({"began": began, "done": done, "delays": [d for d in delays if d is not None],
               "failures": failures[:5], "failed": len(failures), "cpu": _own_cpu()})

    command, final, patience = await receive()
    assert command == "finish"
    progress, idle_since = -1, time.monotonic()
    while True:
        reached = sum(1 for sub in subs if sub.last >= final or sub.closed.done())
        received = sum(sub.received for sub in subs)
        if reached == len(subs):
            break
        if received != progress:
            progress, idle_since = received, time.monotonic()
        elif time.monotonic() - idle_since > patience:
            break
        await asyncio.sleep(0.05)
    pipe.send({
        "received": sum(sub.received for sub in subs),
        "lost": sum(sub.lost + max(0, final - sub.last) for sub in subs),
        "duplicated": sum(sub.duplicated for sub in subs),
        "disconnected": sum(1 for sub in subs if sub.closed.done()),
        "histogram": {i: n for i, n in enumerate(stats.histogram) if n},
        "last_receive": stats.last_receive,
        "cpu": _own_cpu(),
    })
    command = await receive()
    assert command == "close"
    for sub in subs:
        if sub.transport is not None:
            sub.transport.close()
    with contextlib.suppress(Exception):
        await asyncio.sleep(0.1)


def _own_cpu() -> tuple[float, float]:
    times = os.times()
    return times.user, times.system


def percentile(histogram: dict[int, int], fraction: float) -> float:
    """The latency (ms, bucket upper bound) below which ``fraction`` of the samples fall."""
    total = sum(histogram.values())
    if total == 0:
        return float("nan")
    target = fraction * total
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= target:
            return (index + 1) * BUCKET_S * 1000
    return float("nan")


def merge_histograms(parts: list[dict[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for part in parts:
        for index, count in part.items():
            merged[index] = merged.get(index, 0) + count
    return merged
