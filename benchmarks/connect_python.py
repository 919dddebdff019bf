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
import secrets
import sys
import time
from typing import Any

from benchmarks.in_process import StandInTransport, add_turn_arguments, measure_if_asked, take_turns

PER_TURN = 50


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
    parser.add_argument("--transport", choices=("ws", "sse"), default="ws")
    parser.add_argument("--connections", type=int, default=10000)
    add_turn_arguments(parser, ("TRANSPORT", "N"))
    args = parser.parse_args(argv)
    if measure_if_asked(args, measure):
        return 0
    records = take_turns("connect_python", args, {"transport": args.transport},
                         [args.transport, str(args.connections)], "us_per_connect",
                         f"{args.transport}: %s us of CPU per connect, %d runs of {args.connections}")
    return 0 if all(r["answered"] == r["connections"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
