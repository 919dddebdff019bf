"""``python -m benchmarks.floor stack``: flat-out single-event publishing into a bare
uvicorn+httptools app (:mod:`benchmarks.bare`), the ceiling of the server stack pushhub runs on,
and into the same trivial endpoint on the hub's own HTTP server (``http11``), the ceiling of the
hub's publish route, beside pushhub with its memory and its SQLite log, interleaved (see
:mod:`benchmarks.floor`). ``--base COMMIT`` adds pushhub of that commit (both logs), unpacked with
``git archive``, as the reference for a change."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from typing import Any

import uvloop

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
CONTENDERS = ("bare", "http11", "pushhub-memory", "pushhub-sqlite")
BASE_CONTENDERS = ("base-memory", "base-sqlite")


class BareApp(ServerProcess):
    """``python -m benchmarks.bare`` on a free loopback port, on ``server`` (uvicorn or http11)."""

    dialect = BARE

    def __init__(self, server: str) -> None:
        self.port = free_port()
        self.server = server

    def start(self) -> BareApp:
        self.launch([sys.executable, "-m", "benchmarks.bare", "--port", str(self.port), "--server", self.server],
                    f"http://{self.host}:{self.port}/", f"bare app on {self.server}")
        return self


def make(name: str, base_tree: str | None) -> ServerProcess:
    if name == "bare":
        return BareApp("uvicorn")
    if name == "http11":
        return BareApp("http11")
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
        result = uvloop.run(publish_flat_out(server.dialect, server.host, server.port, fresh_channel("stack"),
                                             in_flight=args.in_flight, duration=args.duration))
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
                                   "base": args.base, "nice": os.getpriority(os.PRIO_PROCESS, 0)}, {
        "publish_rate": rates,
        "server_us_per_publish": costs,
        "publisher_us_per_request": generator,
        "ratio_to_bare": {name: ratio(rates[name], rates["bare"]) for name in contenders[1:]},
        "errors": {name: sum(r["errors"] for r in records) for name, records in runs.items()},
    }, runs, facts)
    print(summary(saved))
    return saved


def summary(saved: dict[str, Any]) -> str:
    contenders = list(saved["publish_rate"])
    shares = ", ".join(f"{name} {share:.2f}" for name, share in saved["ratio_to_bare"].items() if share is not None)
    rows = [("publishes/s", [saved["publish_rate"][n] for n in contenders], f"of bare: {shares}"),
            ("server CPU us/publish", [saved["server_us_per_publish"][n] for n in contenders], ""),
            ("generator CPU us/request", [saved["publisher_us_per_request"][n] for n in contenders], "")]
    return "\n".join([
        heading(f"floor stack: flat-out single-event publish, {saved['in_flight']} in flight, "
                f"{saved['duration']:g} s", saved),
        *table(rows, contenders, "pushhub / bare"),
        f"  errors: {', '.join(f'{name} {count}' for name, count in saved['errors'].items())}",
    ])

