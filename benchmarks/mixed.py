"""Fan-out and outgoing webhooks in one hub: do the webhooks crowd out the live fan-out?

    python -m benchmarks.mixed --subscribers 1000 --rate 100 --duration 10 --endpoints 10 --runs 3

Each run is a ``benchmarks.fanout`` run (SSE, SQLite log by default) twice, interleaved: once with
no webhook endpoint, once with ``--endpoints`` endpoints following the channel, all pointing at one
receiver process that answers 200 at once. Reports, per pair and as medians over the runs, the
fan-out's p50/p99 with and without the endpoints (and their ratio), and how long after the last
publish the last of the owed webhooks arrived (``webhook_lag_s``; ``webhooks_missing`` counts those
that had not arrived ``--webhook-patience`` seconds after it). Prints one JSON line per run and a
summary line, and appends them to ``benchmarks/results/mixed.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
import urllib.request
from multiprocessing.connection import Connection as Pipe
from typing import Any

import uvloop

from benchmarks import fanout
from benchmarks.loadgen import ServerProcess, save_result
from benchmarks.webhooks import Receiver, listen


def receiver_main(pipe: Pipe) -> None:
    uvloop.run(_receiver(pipe))


async def _receiver(pipe: Pipe) -> None:
    receiver = Receiver()
    server, base = await listen(receiver)
    pipe.send(base)
    while (command := await asyncio.to_thread(pipe.recv)) != "close":
        assert command == "report"
        pipe.send({"total": receiver.total, "last": receiver.last})
    server.close()


class Webhooks(fanout.Hooks):
    def __init__(self, pipe: Pipe, base: str, endpoints: int, patience: float) -> None:
        self.pipe = pipe
        self.base = base
        self.endpoints = endpoints
        self.patience = patience

    def report(self) -> dict[str, Any]:
        self.pipe.send("report")
        return dict(self.pipe.recv())

    def prepare(self, hub: ServerProcess, channel: str) -> None:
        for n in range(self.endpoints):
            body = json.dumps({"url": f"{self.base}/hook/{n}", "channels": [channel]}).encode()
            request = urllib.request.Request(f"{hub.url}/v1/webhooks/endpoints", data=body, method="POST",
                                             headers={"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 201
        self.before = self.report()["total"]

    def published(self, hub: ServerProcess, published: dict[str, Any]) -> dict[str, Any]:
        owed = published["published"] * self.endpoints
        last_publish = published["start"] + published["elapsed"]
        deadline = last_publish + self.patience
        while True:
            report = self.report()
            arrived = report["total"] - self.before
            if arrived >= owed or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return {"webhook_endpoints": self.endpoints, "webhooks_owed": owed, "webhooks_arrived": arrived,
                "webhooks_missing": owed - arrived,
                "webhook_lag_s": round(report["last"] - last_publish, 3) if 0 < owed <= arrived else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--webhook-patience", type=float, default=30.0)
    own, rest = parser.parse_known_args(argv)
    args = fanout.parse_args(["--storage", "sqlite", *rest])
    args.hub_arg += ["--webhook-allow-network", "127.0.0.0/8"]
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    receiver = context.Process(target=receiver_main, args=(child,), daemon=True)
    receiver.start()
    base = parent.recv()
    pairs = []
    try:
        for n in range(own.runs):
            pair = {}
            for label, endpoints in (("without", 0), ("with", own.endpoints)):
                record = fanout.run(args, hooks=Webhooks(parent, base, endpoints, own.webhook_patience))
                pair[label] = record
                print(json.dumps({"run": n, "label": label, **record}), flush=True)
            pairs.append(pair)
    finally:
        parent.send("close")
        receiver.join(10)
    summary: dict[str, Any] = {
        "benchmark": "mixed", "runs": own.runs, "endpoints": own.endpoints, "subscribers": args.subscribers,
        "rate": args.rate, "duration": args.duration, "storage": args.storage,
        "loadavg": [pairs[0]["without"]["loadavg_start"], pairs[-1]["with"]["loadavg_end"]],
    }
    for label in ("without", "with"):
        for figure in ("p50_ms", "p99_ms", "hub_us_per_delivery"):
            values = [p[label][figure] for p in pairs]
            summary[f"{label}_{figure}"] = values
            summary[f"{label}_{figure}_median"] = statistics.median(values)
    summary["p99_ratio_median"] = round(summary["with_p99_ms_median"] / summary["without_p99_ms_median"], 3)
    lags = [p["with"]["webhook_lag_s"] for p in pairs]
    summary["webhook_lag_s"] = lags
    summary["webhooks_missing"] = [p["with"]["webhooks_missing"] for p in pairs]
    summary["lost"] = sum(p[label]["lost"] for p in pairs for label in ("with", "without"))
    print(json.dumps(summary), flush=True)
    if not args.no_save:
        for pair in pairs:
            for label, record in pair.items():
                save_result("mixed", {"label": label, **record})
        save_result("mixed", summary)
    ok = summary["lost"] == 0 and all(m == 0 for m in summary["webhooks_missing"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
