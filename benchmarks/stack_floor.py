"""``python -m benchmarks.floor stack``: flat-out single-event publishing into a bare
uvicorn+httptools app (:mod:`benchmarks.bare`), the ceiling of the server stack pushhub runs on,
and into the same trivial endpoint on the hub's own HTTP server (``http11``), the ceiling of the
hub's publish route, and into that endpoint storing each body in the hub's SQLite file before it
answers (``http11-sqlite``), the ceiling of a durable publish, beside pushhub with its memory and
its SQLite log, interleaved (see
:mod:`benchmarks.floor`). ``--base COMMIT`` adds pushhub of that commit (both logs), unpacked with
``git archive``, as the reference for a change. With ``--rate R`` the publishes are paced instead,
R per second spread over ``--channels`` channels (event s to channel s mod N), each alone, as in
the per-user scenario of :mod:`benchmarks.peer` but with no subscriber: what a publish costs each
server when nothing is there to group it with."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from typing import Any

import uvloop

from benchmarks import fanout
from benchmarks.loadgen import (
    PUSHHUB,
    Hub,
    ServerProcess,
    free_port,
    fresh_channel,
    machine_facts,
    publish_flat_out,
    raise_fd_limit,
)
from benchmarks.publish import unpack
from benchmarks.report import figures, heading, interleave, ratio, record, table

# The bare app answers 202 to any POST, so it is published to exactly as pushhub is.
BARE = dataclasses.replace(PUSHHUB, name="bare")
CONTENDERS = ("bare", "http11", "http11-sqlite", "pushhub-memory", "pushhub-sqlite")
BASE_CONTENDERS = ("base-memory", "base-sqlite")


class BareApp(ServerProcess):
    """``python -m benchmarks.bare`` on a free loopback port, on ``server`` (uvicorn, http11 or
    http11-sqlite, with a data directory of its own)."""

    dialect = BARE

    def __init__(self, server: str) -> None:
        self.port = free_port()
        self.server = server

    def start(self) -> BareApp:
        args = [sys.executable, "-m", "benchmarks.bare", "--port", str(self.port), "--server", self.server]
        if self.server == "http11-sqlite":
            self.data_dir = tempfile.mkdtemp(prefix="pushhub-bench-")
            args += ["--data-dir", self.data_dir]
        self.launch(args, f"http://{self.host}:{self.port}/", f"bare app on {self.server}")
        return self


def make(name: str, base_tree: str | None) -> ServerProcess:
    if name == "bare":
        return BareApp("uvicorn")
    if name.startswith("http11"):
        return BareApp(name)
    if name.startswith("base-"):
        assert base_tree is not None
        return Hub(storage=name.removeprefix("base-"), tree=base_tree)
    return Hub(storage=name.removeprefix("pushhub-"))


async def warm_up(server: ServerProcess) -> None:
    await publish_flat_out(server.dialect, server.host, server.port, fresh_channel("warmup"), in_flight=4,
                           duration=0.3)


def measure(name: str, args: argparse.Namespace, base_tree: str | None) -> dict[str, Any]:
    server = make(name, base_tree).start()
    try:
        uvloop.run(warm_up(server))
        before = server.cpu_seconds()
        if args.rate is None:
            result = uvloop.run(publish_flat_out(server.dialect, server.host, server.port, fresh_channel("stack"),
                                                 in_flight=args.in_flight, duration=args.duration))
        else:
            paced = argparse.Namespace(rate=args.rate, channels=args.channels, duration=args.duration, batch=1,
                                       pad=0, key=None, flat_out=False, publishers=args.in_flight)
            result = {"publisher_us_per_request": None,
                      **uvloop.run(fanout.publish(server, fresh_channel("stack"), paced))}
        after = server.cpu_seconds()
    finally:
        server.stop()
    assert before is not None and after is not None
    requests = result["requests"]
    return {
        "contender": name,
        "publish_rate": round(result["published"] / result["elapsed"], 1),
        "errors": result["errors"],
        "server_us_per_publish": round((sum(after) - sum(before)) / requests * 1e6, 2) if requests else None,
        "publisher_us_per_request": result["publisher_us_per_request"],
        "loadavg": round(os.getloadavg()[0], 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    facts = machine_facts()
    contenders = CONTENDERS + (BASE_CONTENDERS if args.base else ())
    with tempfile.TemporaryDirectory(prefix="pushhub-bench-base-") as tmp:
        base_tree = unpack(args.base, tmp) if args.base else None
        runs = interleave(contenders, args.runs, lambda name: measure(name, args, base_tree))
    rates = figures(runs, "publish_rate")
    costs = figures(runs, "server_us_per_publish")
    generator = figures(runs, "publisher_us_per_request")
    saved = record("floor-stack", {"runs": args.runs, "duration": args.duration, "in_flight": args.in_flight,
                                   "rate": args.rate, "channels": args.channels,
                                   "base": args.base, "nice": os.getpriority(os.PRIO_PROCESS, 0)}, {
        "publish_rate": rates,
        "server_us_per_publish": costs,
        "publisher_us_per_request": generator,
        "ratio_to_bare": {name: ratio(rates[name], rates["bare"]) for name in contenders[1:]},
        "cpu_to_bare": {name: ratio(costs[name], costs["bare"]) for name in contenders[1:]},
        "errors": {name: sum(r["errors"] for r in records) for name, records in runs.items()},
    }, runs, facts)
    print(summary(saved))
    return saved


def summary(saved: dict[str, Any]) -> str:
    contenders = list(saved["publish_rate"])
    rate = saved.get("rate")
    paced = rate is not None  # then every server takes the same rate: compare what a publish costs each
    shares = ", ".join(f"{name} {share:.2f}" for name, share in saved.get("cpu_to_bare" if paced else "ratio_to_bare",
                                                                         {}).items() if share is not None)
    how = (f"flat-out single-event publish, {saved['in_flight']} in flight" if not paced else
           f"single-event publishes at {rate:g}/s over {saved['channels']} channel(s), "
           f"{saved['in_flight']} connections")
    rows = [("publishes/s", [saved["publish_rate"][n] for n in contenders], "" if paced else f"of bare: {shares}"),
            ("server CPU us/publish", [saved["server_us_per_publish"][n] for n in contenders],
             f"of bare: {shares}" if paced else ""),
            ("generator CPU us/request", [saved["publisher_us_per_request"][n] for n in contenders], "")]
    return "\n".join([
        heading(f"floor stack: {how}, {saved['duration']:g} s", saved),
        *table(rows, contenders, "pushhub / bare"),
        f"  errors: {', '.join(f'{name} {count}' for name, count in saved['errors'].items())}",
    ])

