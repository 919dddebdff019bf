"""The Python of a connect: the hub's HTTP server and stream endpoints take N WebSocket or SSE
connects in one process, each through a stand-in for its socket's transport, so the CPU time per
connect is the hub's own Python (no kernel, no socket I/O, no generator on the same cores). It
is steadier than :mod:`benchmarks.connect` on a shared machine, for comparing two trees.

    python -m benchmarks.connect_python --transport ws --connections 10000 --runs 5 --base main

Each run is a fresh process on a memory log: the connects subscribe to one channel, 50 per turn
of the event loop. With ``--base COMMIT`` that commit's hub and this checkout's take turns; the
median and range of each one's CPU µs per connect are printed, and every run is appended to
``benchmarks/results/connect_python.jsonl`` with its ``tree``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import uvloop

from benchmarks.loadgen import ROOT, machine_facts, save_result
from benchmarks.publish import unpack

PER_TURN = 50


class StandInTransport:
    """What the hub asks of a stream's transport, recording the writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False


def requests(transport: str, count: int) -> list[bytes]:
    if transport == "sse":
        return [b"GET /v1/sse?channel=bench HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
                b"Accept: text/event-stream\r\n\r\n"] * count
    return [(f"GET /v1/ws?channel=bench HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(secrets.token_bytes(16)).decode()}\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: pushhub.json\r\n\r\n").encode()
            for _ in range(count)]


async def measure(transport: str, count: int) -> dict[str, Any]:
    """``count`` connects through the hub of whichever ``pushhub`` this process imports."""
    from pushhub.app import PushHub
    from pushhub.config import Settings
    from pushhub.forwarded import Proxies
    from pushhub.http11 import HttpConnection, ServerState
    from pushhub.server import Lifespan, collect_less_often

    settings = Settings(memory=True)
    app = PushHub(settings)
    lifespan = Lifespan(app)
    await lifespan.startup()
    state = ServerState(app, app.stream_endpoint, settings.http_limits(), Proxies(settings.forwarded_allow_ips),
                        False, ("127.0.0.1", 8000), app.lean_endpoint)
    collect_less_often()
    heads = requests(transport, count + 1)
    answered = []

    def connect(head: bytes) -> None:
        stand_in = StandInTransport()
        conn = HttpConnection(state)
        conn.connection_made(stand_in)  # type: ignore[arg-type]
        conn.data_received(head)
        answered.append(stand_in)

    connect(heads[0])  # the channel's state is made by the first subscription
    await asyncio.sleep(0.1)
    answered.clear()
    cpu = time.process_time()
    for start in range(1, count + 1, PER_TURN):
        for head in heads[start : start + PER_TURN]:
            connect(head)
        await asyncio.sleep(0)
    cpu = time.process_time() - cpu
    status = b" 101 " if transport == "ws" else b" 200 "
    ok = sum(1 for t in answered if t.writes and status in t.writes[0][:20] and not t.closing)
    return {"connections": count, "answered": ok, "us_per_connect": round(cpu / count * 1e6, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", nargs=2, metavar=("TRANSPORT", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--transport", choices=("ws", "sse"), default="ws")
    parser.add_argument("--connections", type=int, default=10000)
    add_turn_arguments(parser)
    args = parser.parse_args(argv)
    if args.measure:
        logging.disable(logging.CRITICAL)  # the stand-in transports are left open at the end
        print(json.dumps(uvloop.run(measure(args.measure[0], int(args.measure[1])))))
        return 0
    records = take_turns("connect_python", args, {"transport": args.transport},
                         [args.transport, str(args.connections)], "us_per_connect",
                         f"{args.transport}: %s us of CPU per connect, %d runs of {args.connections}")
    return 0 if all(r["answered"] == r["connections"] for r in records) else 1


def add_turn_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--base", default=None, help="a commit whose hub takes turns with this one's")
    parser.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")


def take_turns(benchmark: str, args: argparse.Namespace, what: dict[str, Any], measure: list[str], figure: str,
               summary: str) -> list[dict[str, Any]]:
    """``args.runs`` runs of ``python -m benchmarks.{benchmark} --measure {measure}``, each a fresh
    process (of this checkout's hub, taking turns with commit ``args.base``'s if given) that prints
    its record last; each record (``what`` in it) is printed and, unless ``args.no_save``, appended
    to ``benchmarks/results/{benchmark}.jsonl``, then each tree's median and range of ``figure`` is
    printed through ``summary`` (its ``%s`` the figures, its ``%d`` the number of runs)."""
    facts = machine_facts()
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pushhub-base-") as base_dir:
        trees: dict[str, str | None] = {"this": None}
        if args.base:
            trees = {f"base {args.base}": unpack(args.base, base_dir), **trees}
        for _ in range(args.runs):
            for name, tree in trees.items():
                env = dict(os.environ)
                if tree is not None:
                    env["PYTHONPATH"] = os.path.join(tree, "hub")
                out = subprocess.run([sys.executable, "-m", f"benchmarks.{benchmark}", "--measure", *measure],
                                     cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
                record = {"benchmark": benchmark, "tree": name, **what, **json.loads(out.strip().splitlines()[-1]),
                          **facts, "loadavg_end": os.getloadavg()[0]}
                records.append(record)
                print(json.dumps(record))
                if not args.no_save:
                    save_result(benchmark, record)
    for name in trees:
        mine = [r[figure] for r in records if r["tree"] == name]
        print(f"{name:>12} " + summary % (f"{statistics.median(mine):.1f} [{min(mine):.1f}-{max(mine):.1f}]",
                                           len(mine)))
    print(f"load average {facts['loadavg_start']:.2f} -> {os.getloadavg()[0]:.2f}")
    return records

if __name__ == "__main__":
    sys.exit(main())
