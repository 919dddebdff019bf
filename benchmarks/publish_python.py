"""The Python of a durable publish: the hub's HTTP server, the lean publish route and the group
commit take single-event publishes from 32 keep-alive connections in one process, each through a
stand-in for its socket's transport (:class:`benchmarks.in_process.StandInTransport`), so the
CPU time per publish is the hub's own (its Python and SQLite, no socket I/O, no generator on the
same cores). It is steadier than ``floor stack`` on a shared machine, for comparing two trees.

    python -m benchmarks.publish_python --storage sqlite --rounds 1000 --runs 5 --base main

Each run is a fresh process and data directory: every round writes one request on each connection
and turns the event loop until all 32 are answered (one group commit of 32). With ``--base COMMIT``
that commit's hub and this checkout's take turns; the median and range of each one's CPU µs per
publish (every thread of the process) are printed, and every run is appended to
``benchmarks/results/publish_python.jsonl`` with its ``tree``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from typing import Any

from benchmarks.in_process import StandInTransport, add_turn_arguments, measure_if_asked, take_turns

IN_FLIGHT = 32
WARM_UP = 50  # rounds before the measured ones


class Round:
    """The answers a round waits for."""

    def __init__(self) -> None:
        self.pending = 0
        self.done = asyncio.Event()

    def answered(self) -> None:
        self.pending -= 1
        if not self.pending:
            self.done.set()


class Answered(StandInTransport):
    """A stand-in transport that tells the round of each answer written."""

    def __init__(self, round_: Round) -> None:
        super().__init__()
        self.round = round_

    def write(self, data: bytes) -> None:
        super().write(data)
        self.round.answered()


def request(number: int) -> bytes:
    body = b'{"type":"bench.tick","data":{"t":%.6f,"s":%d}}' % (time.monotonic(), number)
    return (b"POST /v1/channels/bench/events HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


async def measure(storage: str, rounds: int) -> dict[str, Any]:
    """``rounds`` of :data:`IN_FLIGHT` publishes through the hub of whichever ``pushhub`` this process imports."""
    from pushhub.app import PushHub
    from pushhub.config import Settings
    from pushhub.forwarded import Proxies
    from pushhub.http11 import HttpConnection, ServerState
    from pushhub.server import Lifespan, collect_less_often

    with tempfile.TemporaryDirectory(prefix="pushhub-bench-") as data_dir:
        settings = Settings(memory=True) if storage == "memory" else Settings(data_dir=data_dir)
        app = PushHub(settings)
        lifespan = Lifespan(app)
        await lifespan.startup()
        state = ServerState(app, app.stream_endpoint, settings.http_limits(), Proxies(settings.forwarded_allow_ips),
                            False, ("127.0.0.1", 8000), app.lean_endpoint)
        collect_less_often()
        round_ = Round()
        connections = []
        for _ in range(IN_FLIGHT):
            stand_in = Answered(round_)
            conn = HttpConnection(state)
            conn.connection_made(stand_in)
            connections.append((conn, stand_in))

        async def round_of(number: int) -> int:
            round_.pending = IN_FLIGHT
            round_.done.clear()
            for conn, _ in connections:
                conn.data_received(request(number))
            await round_.done.wait()
            accepted = sum(1 for _, stand_in in connections if stand_in.writes[0].startswith(b"HTTP/1.1 202 "))
            for _, stand_in in connections:
                stand_in.writes.clear()
            return accepted

        for number in range(WARM_UP):
            await round_of(number)
        accepted = 0
        cpu = time.process_time()
        for number in range(rounds):
            accepted += await round_of(number)
        cpu = time.process_time() - cpu
        await lifespan.shutdown()
    return {"publishes": rounds * IN_FLIGHT, "accepted": accepted,
            "us_per_publish": round(cpu / rounds / IN_FLIGHT * 1e6, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=1000)
    add_turn_arguments(parser, ("STORAGE", "ROUNDS"))
    args = parser.parse_args(argv)
    if measure_if_asked(args, measure):
        return 0
    summary = f"{args.storage}: %s us of CPU per publish, %d runs of {args.rounds * IN_FLIGHT}"
    records = take_turns("publish_python", args, {"storage": args.storage}, [args.storage, str(args.rounds)],
                         "us_per_publish", summary)
    return 0 if all(r["accepted"] == r["publishes"] for r in records) else 1

if __name__ == "__main__":
    sys.exit(main())
