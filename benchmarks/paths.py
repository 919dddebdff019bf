"""Events per second into one hub process through each way of publishing, flat out, each beside
the others in the same run: single events and batches over HTTP, WebSocket ``publish`` ops, and
signed Standard Webhooks through ingest (verified, deduped by ``webhook-id``, appended).

    python -m benchmarks.paths [--runs 3] [--duration 5] [--in-flight 32] [--batch 100] [--hub-arg ARG]...
                               [--only PATH]... [--base COMMIT]

Every path gets a fresh hub (SQLite, the default, unless ``--hub-arg --memory``) and ``--in-flight``
connections, each with one request (or op) in flight at a time, sent from raw asyncio protocols so
that the generator stays cheaper than the hub. ``--base COMMIT`` adds that commit's hub (unpacked
with ``git archive``) on each path, as ``base-PATH``. The paths take turns within each run, in an
order that rotates from run to run. Prints the median and range of events/s and of the hub's CPU per
event, and appends the record to ``benchmarks/results/paths.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any, cast

import uvloop

from benchmarks.loadgen import (
    PUSHHUB,
    PUSHHUB_MESSAGES,
    Hub,
    events_body,
    machine_facts,
    save_result,
    ws_client_frame,
    ws_request,
)
from benchmarks.publish import unpack
from benchmarks.report import figures, heading, interleave, record, table

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PATHS = ("single", "batch", "websocket", "ingest")
# The bytes of one complete message (0: incomplete) and whether it accepted the events (None: it is
# no answer, e.g. a WebSocket ping, and the request is still in flight)
Answered = Callable[[bytearray], tuple[int, bool | None]]


class OneInFlight(asyncio.Protocol):
    """One connection that sends its next request as soon as the answer to the previous one is in,
    until ``deadline``; ``answered(buffer)`` says how many bytes of the buffer one complete answer
    takes (0: not complete yet) and whether it accepted the events."""

    def __init__(self, request: Callable[[int], bytes], numbers: Iterator[int], deadline: float,
                 answered: Answered, per_request: int, greeting: bytes = b"") -> None:
        self.request = request
        self.numbers = numbers
        self.deadline = deadline
        self.answered = answered
        self.per_request = per_request
        self.greeting = greeting  # sent first, its answer (a handshake) skipped
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.accepted = 0
        self.errors = 0
        self.first_error = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.greeting:
            self.transport.write(self.greeting)
        else:
            self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request(next(self.numbers)))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.greeting:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            del self.buffer[: end + 4]
            self.greeting = b""
            self.send()
        while True:
            size, ok = self.answered(self.buffer)
            if not size:
                return
            if ok is None:
                del self.buffer[:size]
                continue
            if ok:
                self.accepted += self.per_request
            else:
                self.errors += 1
                self.first_error = self.first_error or bytes(self.buffer[:size])
            del self.buffer[:size]
            if time.monotonic() >= self.deadline:
                if not self.done.done():
                    self.done.set_result(None)
                return
            self.send()


def http_answer(buffer: bytearray) -> tuple[int, bool]:
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return 0, False
    head = bytes(buffer[:end]).lower()
    length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    if len(buffer) < end + 4 + length:
        return 0, False
    return end + 4 + length, head[9:12] in (b"200", b"202")


def ws_answer(buffer: bytearray) -> tuple[int, bool | None]:
    """One server frame (unmasked): a ``published`` reply is an accepted op, an ``error`` reply a
    refused one; any other frame is no answer."""
    if len(buffer) < 2:
        return 0, False
    length, head = buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return 0, False
        length, head = int.from_bytes(buffer[2:4], "big"), 4
    elif length == 127:
        if len(buffer) < 10:
            return 0, False
        length, head = int.from_bytes(buffer[2:10], "big"), 10
    if len(buffer) < head + length:
        return 0, False
    if buffer.find(b'"op":"published"', head, head + length) >= 0:
        return head + length, True
    return head + length, False if buffer.find(b'"op":"error"', head, head + length) >= 0 else None


def http_post(path: str, body: Callable[[int], bytes], headers: Callable[[int, bytes], bytes] = lambda n, b: b"",
              ) -> Callable[[int], bytes]:
    def request(n: int) -> bytes:
        payload = body(n)
        return (b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n%s"
                b"Content-Length: %d\r\n\r\n%s" % (path.encode(), headers(n, payload), len(payload), payload))
    return request


def standard_headers(n: int, body: bytes) -> bytes:
    """Standard Webhooks headers signing ``body`` as message ``n``, now."""
    msg, stamp = f"msg_{n}", str(int(time.time()))
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = base64.b64encode(hmac.new(key, f"{msg}.{stamp}.".encode() + body, hashlib.sha256).digest())
    return b"webhook-id: %s\r\nwebhook-timestamp: %s\r\nwebhook-signature: v1,%s\r\n" % (
        msg.encode(), stamp.encode(), mac)


Path = tuple[Callable[[int], bytes], Answered, int, Callable[[Hub], bytes]]


def make_path(name: str, args: argparse.Namespace) -> Path:
    """(request of number n, answer parser, events per request, greeting for a hub)."""
    none: Callable[[Hub], bytes] = lambda hub: b""  # noqa: E731
    if name == "single":
        return http_post("/v1/channels/single/events", lambda n: events_body(PUSHHUB, n)), http_answer, 1, none
    if name == "batch":
        return (http_post("/v1/channels/batch/events", lambda n: events_body(PUSHHUB, n * args.batch, args.batch)),
                http_answer, args.batch, none)
    if name == "websocket":
        def op(n: int) -> bytes:
            event = events_body(PUSHHUB, n)
            return ws_client_frame(b'{"op":"publish","id":%d,"channel":"ws","event":%s}' % (n, event))
        return op, ws_answer, 1, lambda hub: ws_request(PUSHHUB_MESSAGES, hub.host, hub.port, "ws")
    return (http_post("/v1/ingest/bench", lambda n: b'{"type":"bench.tick","data":{"s":%d}}' % n, standard_headers),
            http_answer, 1, none)


def ingest_config(directory: str) -> str:
    path = os.path.join(directory, "ingest.toml")
    with open(path, "w") as f:
        f.write(f'[sources.bench]\nscheme = "standard"\nsecrets = ["{SECRET}"]\nchannel = "ingest"\n')
    return path


async def drive(hub: Hub, name: str, args: argparse.Namespace, duration: float,
                numbers: Iterator[int]) -> dict[str, Any]:
    request, answered, per_request, greeting = make_path(name, args)
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + duration
    connections = []
    for _ in range(args.in_flight):
        _, conn = await loop.create_connection(
            lambda: OneInFlight(request, numbers, deadline, answered, per_request, greeting(hub)), hub.host, hub.port)
        connections.append(conn)
    started = time.monotonic()
    await asyncio.gather(*(c.done for c in connections))
    elapsed = time.monotonic() - started
    for conn in connections:
        assert conn.transport is not None
        conn.transport.close()
    return {"accepted": sum(c.accepted for c in connections), "errors": sum(c.errors for c in connections),
            "first_error": next((c.first_error.decode(errors="replace") for c in connections if c.first_error), ""),
            "elapsed": elapsed}


def measure(contender: str, args: argparse.Namespace, base_tree: str | None) -> dict[str, Any]:
    name = contender.removeprefix("base-")
    with tempfile.TemporaryDirectory(prefix="pushhub-bench-paths-") as tmp:
        hub_args = ["--ingest-config", ingest_config(tmp), *args.hub_arg]
        hub = Hub(storage="sqlite", extra_args=hub_args, tree=None if name == contender else base_tree)
        hub.start()
        try:
            numbers = itertools.count(1)
            uvloop.run(drive(hub, name, args, 0.5, numbers))  # warm-up
            before = hub.cpu_seconds()
            result = uvloop.run(drive(hub, name, args, args.duration, numbers))
            after = hub.cpu_seconds()
        finally:
            hub.stop()
    assert before is not None and after is not None
    accepted = result["accepted"]
    if result["first_error"]:
        print(f"{name}: first error: {result['first_error'][:300]}", file=sys.stderr)
    return {"path": contender, "events_per_s": round(accepted / result["elapsed"], 1), "errors": result["errors"],
            "hub_us_per_event": round((sum(after) - sum(before)) / accepted * 1e6, 2) if accepted else None,
            "loadavg": round(os.getloadavg()[0], 2)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of publishing per path and run")
    parser.add_argument("--in-flight", type=int, default=32, help="connections, one request in flight on each")
    parser.add_argument("--batch", type=int, default=100, help="events per batch request")
    parser.add_argument("--only", action="append", choices=PATHS, help="paths to measure (all by default)")
    parser.add_argument("--hub-arg", action="append", default=[], help="extra argument for 'pushhub serve'")
    parser.add_argument("--base", help="a commit whose hub is measured beside this tree's on each path")
    parser.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    paths = tuple(args.only or PATHS)
    if args.base:
        paths += tuple(f"base-{path}" for path in paths)
    with ExitStack() as stack:
        base_tree = unpack(args.base, stack.enter_context(tempfile.TemporaryDirectory())) if args.base else None
        runs = interleave(paths, args.runs, lambda name: measure(name, args, base_tree))
    rates, costs = figures(runs, "events_per_s"), figures(runs, "hub_us_per_event")
    saved = record("paths", {"runs": args.runs, "duration": args.duration, "in_flight": args.in_flight,
                             "batch": args.batch, "hub_args": args.hub_arg, "base": args.base,
                             "nice": os.getpriority(os.PRIO_PROCESS, 0)},
                   {"events_per_s": rates, "hub_us_per_event": costs,
                    "errors": {name: sum(r["errors"] for r in records) for name, records in runs.items()}}, runs, facts)
    print("\n".join([
        heading(f"publish paths: flat out, {args.in_flight} in flight, batches of {args.batch}, "
                f"{args.duration:g} s", saved),
        *table([("events/s", [rates[p] for p in paths], ""), ("hub CPU us/event", [costs[p] for p in paths], "")],
               list(paths), ""),
        f"  errors: {', '.join(f'{name} {count}' for name, count in saved['errors'].items())}"]))
    print(json.dumps({key: value for key, value in saved.items() if key != "records"}))
    if not args.no_save:
        save_result("paths", saved)
    return 1 if any(saved["errors"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
