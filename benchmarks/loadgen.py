"""What the benchmarks share: cheap raw-socket subscribers and publishers, generator worker processes,
the hub process under test and its /proc readings.

The subscribers are plain asyncio protocols on uvloop, with no HTTP or WebSocket library: a
subscriber counts frames and pulls the publish timestamp and the sequence number out of them with a
few ``bytes.find`` calls, so that the generator costs less CPU than the server it measures. Every event
published by the benchmarks carries ``{"t": <time.monotonic() at publish>, "s": <sequence number>}``
as its data; ``CLOCK_MONOTONIC`` is shared by every process on the machine, so the receiving process
computes the latency, and the sequence numbers count what was lost or duplicated the same way
whichever server delivered it (pushhub, or the reference it is compared with, :mod:`benchmarks.nchan`).
The wire differences between the servers are a :class:`Dialect`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime
import importlib.metadata
import itertools
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
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import IO, Any, cast

import uvloop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the hub under test is this checkout's
RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results")

# Latency histogram: 0.1 ms buckets up to 30 s (the last bucket collects everything slower).
BUCKET_S = 1e-4
BUCKETS = 300_000

# Frames are picked apart with bytes.find, which is three times cheaper than one regular expression.
_TIME = b'{"t":'
_SEQUENCE = b',"s":'
_NUMBER = re.compile(rb"[0-9.]+")


@dataclass(frozen=True)
class Dialect:
    """How one server is published to and subscribed from."""

    name: str
    sse_path: str  # formatted with the channel
    ws_path: str
    ws_protocol: str | None  # Sec-WebSocket-Protocol to ask for
    ws_subscribe: bool  # a subscribe message follows the handshake (else the URL subscribes)
    ws_confirms: bool  # a ``subscribed`` message confirms a WebSocket subscription (else the handshake does)
    publish_path: str
    accepted: frozenset[int]  # publish statuses that mean the event was taken
    envelope: bool  # the publish body wraps the data in {"type", "data"} (and can batch events)


PUSHHUB = Dialect("pushhub", "/v1/sse?channel={channel}", "/v1/ws?channel={channel}", "pushhub.json", False, True,
                  "/v1/channels/{channel}/events", frozenset({202}), True)
# The same hub, its WebSockets subscribed with a ``subscribe`` message after the handshake instead.
PUSHHUB_MESSAGES = dataclasses.replace(PUSHHUB, name="pushhub-messages", ws_path="/v1/ws", ws_subscribe=True)
# Nchan answers 201 when the message reached a subscriber and 202 when it was only stored.
NCHAN = Dialect("nchan", "/sub?channel={channel}", "/sub?channel={channel}", None, False, False,
                "/pub?channel={channel}", frozenset({201, 202}), False)
DIALECTS = {d.name: d for d in (PUSHHUB, PUSHHUB_MESSAGES, NCHAN)}



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

def storage_name(args: argparse.Namespace, server: ServerProcess | None) -> str:
    """What a result record calls the log of the server measured."""
    if server is not None and server.dialect is not PUSHHUB:
        return "memory"
    return str(args.storage) if args.url is None else "external"


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def prioritise(pids: list[int | None], niceness: int) -> None:
    """Give the hub and the generator, with their workers (nginx's is a child of its master), a
    scheduling priority over the rest of a shared machine (a negative niceness needs root); 0 leaves
    them alone."""
    if niceness:
        for pid in pids:
            if pid is not None:
                for member in process_tree(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.setpriority(os.PRIO_PROCESS, member, niceness)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_channel(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# The hub under test ---------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server's workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def machine_cpu_seconds() -> float | None:
    """CPU time every core of the machine has spent busy so far (user, nice, system, irq, softirq;
    not idle, iowait or steal), from /proc/stat.

    On loopback the kernel's receive path for a client's socket runs in whichever context is at
    hand: inside the server's write when the client is asleep, inside the client's read when it is
    busy. A server's own CPU time therefore moves with how busy the load generator is; the
    machine's busy time per delivery does not, and two servers given the same load by the same
    generator differ in it only by what they cost in all."""
    with contextlib.suppress(OSError), open("/proc/stat") as f:
        fields = f.readline().split()
        if fields and fields[0] == "cpu":
            user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
            return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    return None


class ServerProcess:
    """What the benchmarks read of a server under test: where it listens, its dialect, and the CPU
    time and memory of its process and all its workers."""

    dialect = PUSHHUB
    host = "127.0.0.1"
    port = 0
    pid: int | None = None
    process: subprocess.Popen[bytes] | None = None
    data_dir: str | None = None  # the server's own, removed when it stops

    def start(self) -> ServerProcess:
        return self

    def launch(self, args: list[str], ready_url: str, what: str, output: int | IO[bytes] = subprocess.DEVNULL,
               env: dict[str, str] | None = None) -> None:
        """Start ``args`` (in ``env``, by default this process's) and wait until ``ready_url`` answers."""
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, env=env)
        self.pid = self.process.pid
        wait_until_serving(self.process, ready_url, what)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
            self.pid = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def cpu_seconds(self) -> tuple[float, float] | None:
        """User and system CPU time of the server's processes so far."""
        if self.pid is None:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        user = system = 0.0
        for pid in process_tree(self.pid):
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
                user += int(fields[11]) / tick
                system += int(fields[12]) / tick
        return user, system

    def rss_kib(self) -> int | None:
        if self.pid is None:
            return None
        total = 0
        for pid in process_tree(self.pid):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total


def wait_until_serving(process: subprocess.Popen[bytes], url: str, what: str) -> None:
    """Poll ``url`` until it answers (any HTTP status), or fail if ``process`` exits first."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start serving")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Hub(ServerProcess):
    """A ``python -m pushhub serve`` process on a free loopback port (memory or SQLite log), or an
    already running hub given by URL (then its PID, if known, enables the /proc readings)."""

    def __init__(self, url: str | None = None, *, storage: str = "memory", pid: int | None = None,
                 extra_args: list[str] | None = None, tree: str | None = None) -> None:
        self.storage = storage
        self.tree = tree  # another checkout's hub (its ``hub`` directory first on the path), else this one
        self.pid = pid
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
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
        env = None if self.tree is None else {**os.environ, "PYTHONPATH": os.path.join(self.tree, "hub")}
        self.launch(args, self.url + "/healthz", "hub", env=env)
        return self


def versions() -> dict[str, str]:
    """The versions of the server stack under test, and of nginx and Nchan when installed."""
    found = {}
    for name in ("uvicorn", "httptools", "uvloop", "starlette", "websockets", "aiohttp", "httpx"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    with contextlib.suppress(OSError):
        nginx = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True, check=False)
        found["nginx"] = nginx.stderr.strip().rpartition("/")[2]
    with contextlib.suppress(OSError):
        nchan = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libnginx-mod-nchan"],
                               capture_output=True, text=True, check=False)
        if nchan.returncode == 0:
            found["nchan"] = nchan.stdout.strip()
    return found


def machine_facts() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT, check=False).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions(),
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
    """One subscription. Counts the distinct sequence numbers received (``distinct``) and the
    repeats (``duplicated``), whatever order they arrive in; ``ready`` is set once the server has
    confirmed the subscription."""

    def __init__(self, stats: Stats, request: bytes) -> None:
        self.stats = stats
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seen = bytearray()
        self.distinct = 0
        self.received = 0
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

    def record(self, buffer: bytearray, start: int, end: int, now: float) -> int:
        """Count the event whose data starts at ``start`` (``{"t":…,"s":…}``); returns where it ends."""
        number = _NUMBER.match(buffer, start + len(_TIME))
        assert number is not None
        sent = float(number[0])
        sequence = _NUMBER.match(buffer, buffer.find(_SEQUENCE, number.end(), end) + len(_SEQUENCE))
        assert sequence is not None
        seq = int(sequence[0])
        seen = self.seen
        if seq >= len(seen):
            seen.extend(bytes(seq + 1024 - len(seen)))
        if seen[seq]:
            self.duplicated += 1
        else:
            seen[seq] = 1
            self.distinct += 1
        self.received += 1
        index = int((now - sent) / BUCKET_S)
        self.stats.histogram[index if 0 <= index < BUCKETS else BUCKETS - 1] += 1
        return sequence.end()


class SSESubscriber(Subscriber):
    """An EventSource stream: ready at the first complete frame (pushhub's preamble, Nchan's
    ``: hi`` comment), then every frame with benchmark data counts."""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded and not self._headers():
            return
        limit = buffer.rfind(b"\n\n")
        if limit < 0:
            return
        now = time.monotonic()
        if not self.ready.done():
            self.ready.set_result(now)
        find, pos = buffer.find, 0
        while (start := find(_TIME, pos, limit)) >= 0:
            pos = self.record(buffer, start, limit, now)
            self.stats.last_receive = now
        del buffer[: limit + 2]


class WSSubscriber(Subscriber):
    """A WebSocket: ``subscribe`` (if any) is sent after the handshake; ready at the ``subscribed``
    message if the server ``confirms`` so (pushhub, whether the URL or a message subscribed), else
    at the handshake (Nchan: the URL names the channel); every text frame with benchmark data counts."""

    expected_status = b" 101 "

    def __init__(self, stats: Stats, request: bytes, subscribe: bytes, confirms: bool) -> None:
        super().__init__(stats, request)
        self.subscribe = subscribe
        self.confirms = confirms

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        now = time.monotonic()
        if not self.upgraded:
            if not self._headers():
                return
            assert self.transport is not None
            if self.subscribe:
                self.transport.write(self.subscribe)
            if not self.confirms:
                self.ready.set_result(now)
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
                start = buffer.find(_TIME, pos + head, end)
                if start >= 0:
                    self.record(buffer, start, end, now)
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


def user_channel(channel: str, index: int, channels: int) -> str:
    """Channel ``index`` of a run over ``channels`` channels (``channel`` itself when there is one):
    event ``s`` goes to ``user_channel(channel, s % channels, channels)``."""
    return channel if channels == 1 else f"{channel}.{index % channels}"


def events_for(index: int, accepted: int, channels: int) -> int:
    """How many of the events numbered 1 to ``accepted`` go to channel ``index`` of ``channels``."""
    if channels == 1:
        return accepted
    residue = index % channels
    if residue == 0:
        return accepted // channels
    return max(0, (accepted - residue) // channels + 1)


def sse_request(dialect: Dialect, host: str, port: int, channel: str) -> bytes:
    return (f"GET {dialect.sse_path.format(channel=channel)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n").encode()


def ws_request(dialect: Dialect, host: str, port: int, channel: str) -> bytes:
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    protocol = f"Sec-WebSocket-Protocol: {dialect.ws_protocol}\r\n" if dialect.ws_protocol else ""
    return (f"GET {dialect.ws_path.format(channel=channel)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{protocol}\r\n").encode()


async def open_subscriber(stats: Stats, dialect: Dialect, transport: str, host: str, port: int,
                          channel: str) -> Subscriber:
    loop = asyncio.get_running_loop()
    sub: Subscriber
    if transport == "sse":
        request = sse_request(dialect, host, port, channel)
        _, sub = await loop.create_connection(lambda: SSESubscriber(stats, request), host, port)
    else:
        subscribe = b""
        if dialect.ws_subscribe:
            subscribe = ws_client_frame(b'{"op":"subscribe","id":1,"channel":"%s"}' % channel.encode())
        request = ws_request(dialect, host, port, channel)
        _, sub = await loop.create_connection(lambda: WSSubscriber(stats, request, subscribe, dialect.ws_confirms),
                                              host, port)
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


def events_body(dialect: Dialect, first: int, count: int = 1, pad: bytes = b"") -> bytes:
    """A publish body of ``count`` events numbered from ``first``, carrying the time of publishing."""
    now = b"%.6f" % time.monotonic()
    if not dialect.envelope:
        if count != 1:
            raise ValueError(f"{dialect.name} takes one message per publish")
        return b'{"t":%s,"s":%d%s}' % (now, first, pad)
    events = [b'{"type":"bench.tick","data":{"t":%s,"s":%d%s}}' % (now, first + i, pad) for i in range(count)]
    if count == 1:
        return events[0]
    return b'{"events":[%s]}' % b",".join(events)


class FlatOutPublisher(asyncio.Protocol):
    """One keep-alive connection that always has one publish request in flight until ``deadline``:
    the next request is written from ``data_received`` as soon as the answer to the previous one is
    in, with no task or future per request, so that the generator stays cheaper than the server."""

    def __init__(self, dialect: Dialect, path: str, headers: str, numbers: Iterator[int], batch: int,
                 pad: bytes, deadline: float) -> None:
        self.dialect = dialect
        self.head = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                     f"{headers}Content-Length: ").encode()
        self.numbers = numbers
        self.batch = batch
        self.pad = pad
        self.deadline = deadline
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.length = -1
        self.status = 0
        self.accepted = 0
        self.errors = 0
        self.first_error = ""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        body = events_body(self.dialect, next(self.numbers), self.batch, self.pad)
        self.transport.write(b"%s%d\r\n\r\n%s" % (self.head, len(body), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"publisher connection closed: {exc}"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if self.length < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            self.status = int(head[9:12])
            self.length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            del buffer[: end + 4]
        if len(buffer) < self.length:
            return
        if self.status in self.dialect.accepted:
            self.accepted += self.batch
        else:
            self.errors += 1
            if not self.first_error:
                self.first_error = f"{self.status} {bytes(buffer[: min(self.length, 200)])!r}"
        del buffer[: self.length]
        self.length = -1
        if time.monotonic() < self.deadline:
            self.send()
        elif not self.done.done():
            self.done.set_result(None)


async def publish_flat_out(dialect: Dialect, host: str, port: int, channel: str, *, in_flight: int,
                           duration: float, batch: int = 1, pad: bytes = b"", headers: str = "",
                           numbers: Iterator[int] | None = None) -> dict[str, Any]:
    """Publish as fast as the server answers for ``duration`` seconds, ``in_flight`` requests at a
    time (one per connection), events numbered from 1 in the order they are sent."""
    loop = asyncio.get_running_loop()
    numbers = numbers or itertools.count(1, batch)
    path = dialect.publish_path.format(channel=channel)
    start = time.monotonic()
    cpu = os.times()
    publishers = []
    for _ in range(in_flight):
        _, publisher = await loop.create_connection(
            lambda: FlatOutPublisher(dialect, path, headers, numbers, batch, pad, start + duration), host, port)
        publishers.append(publisher)
    await asyncio.gather(*(p.done for p in publishers))
    elapsed = time.monotonic() - start
    after = os.times()
    for publisher in publishers:
        assert publisher.transport is not None
        publisher.transport.close()
    requests = sum(p.accepted // batch + p.errors for p in publishers)
    return {
        "published": sum(p.accepted for p in publishers),
        "requests": requests,
        "errors": sum(p.errors for p in publishers),
        "first_error": next((p.first_error for p in publishers if p.first_error), ""),
        "start": start,
        "elapsed": elapsed,
        "publisher_us_per_request": round((after.user + after.system - cpu.user - cpu.system) / requests * 1e6, 2)
        if requests else None,
    }


# Generator worker processes -------------------------------------------------------------------


@dataclass
class WorkerSpec:
    transport: str
    host: str
    port: int
    channel: str
    count: int
    concurrency: int = 200
    dialect: str = PUSHHUB.name
    channels: int = 1  # more: subscriber ``first + i`` follows channel ``user_channel(channel, first + i, channels)``
    first: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def worker_main(pipe: Pipe, spec: WorkerSpec) -> None:
    raise_fd_limit()
    uvloop.run(_worker(pipe, spec))


async def _worker(pipe: Pipe, spec: WorkerSpec) -> None:
    """Connect ``spec.count`` subscribers when told to, then count what arrives; the parent drives
    each step over ``pipe``: ``connect`` → ``finish`` (how many events were accepted) → ``close``."""
    loop = asyncio.get_running_loop()
    stats = Stats()
    subs: list[Subscriber] = []

    async def receive() -> Any:
        return await loop.run_in_executor(None, pipe.recv)

    command = await receive()
    assert command == "connect"
    cpu_start = _own_cpu()
    gate = asyncio.Semaphore(spec.concurrency)
    failures: list[str] = []
    indexes: dict[Subscriber, int] = {}

    async def connect_one(index: int) -> float | None:
        async with gate:
            started = time.monotonic()
            try:
                sub = await open_subscriber(stats, DIALECTS[spec.dialect], spec.transport, spec.host, spec.port,
                                            user_channel(spec.channel, index, spec.channels))
                subs.append(sub)
                indexes[sub] = index
                ready = await asyncio.wait_for(sub.ready, 60)
            except (OSError, TimeoutError) as exc:
                failures.append(repr(exc))
                return None
            return ready - started

    began = time.monotonic()
    delays = await asyncio.gather(*(connect_one(spec.first + i) for i in range(spec.count)))
    done = time.monotonic()
    pipe.send({"began": began, "done": done, "delays": [d for d in delays if d is not None],
               "failures": failures[:5], "failed": len(failures), "cpu_start": cpu_start, "cpu": _own_cpu()})

    command, accepted, patience = await receive()
    assert command == "finish"
    expected = {sub: events_for(index, accepted, spec.channels) for sub, index in indexes.items()}
    progress, idle_since = -1, time.monotonic()
    while True:
        reached = sum(1 for sub in subs if sub.distinct >= expected[sub] or sub.closed.done())
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
        "lost": sum(max(0, expected[sub] - sub.distinct) for sub in subs),
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
