"""Fan-out and outgoing webhooks in one hub: do the webhooks crowd out the live fan-out?

    python -m benchmarks.mixed --subscribers 1000 --rate 100 --duration 10 --endpoints 10 --runs 3

Each run is a ``benchmarks.fanout`` run (SSE, SQLite log by default) twice, interleaved: once with
no webhook endpoint, once with ``--endpoints`` endpoints following the channel, all pointing at one
receiver process that answers 200 at once. Reports, per pair and as medians over the runs, the
fan-out's p50/p99 with and without the endpoints (and their ratio), and how long after the last
publish the last of the owed webhooks arrived (``webhook_lag_s``; ``webhooks_missing`` counts those
that had not arrived ``--webhook-patience`` seconds after it). Prints one JSON line per run and a
summary line, and appends them to ``benchmarks/results/mixed.jsonl``.

``--base COMMIT`` measures that commit's hub (unpacked with ``git archive``) the same way in the same
rounds, each round starting with the tree after the one that started the previous round; its
medians and ratio are reported beside this tree's (``base_*``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection as Pipe
from typing import Any

import uvloop

from benchmarks import fanout
from benchmarks.loadgen import Hub, ServerProcess, save_result
from benchmarks.publish import unpack
from benchmarks.report import interleave
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


def medians(pairs: list[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    """Each figure of ``pairs`` (one pair of runs, without and with the endpoints, per round) with its
    median, and the median p99 ratio; keys start with ``prefix``."""
    summary: dict[str, Any] = {}
    for label in ("without", "with"):
        for figure in ("p50_ms", "p99_ms", "hub_us_per_delivery"):
            values = [p[label][figure] for p in pairs]
            summary[f"{prefix}{label}_{figure}"] = values
            summary[f"{prefix}{label}_{figure}_median"] = statistics.median(values)
    summary[f"{prefix}p99_ratio_median"] = round(summary[f"{prefix}with_p99_ms_median"]
                                                 / summary[f"{prefix}without_p99_ms_median"], 3)
    summary[f"{prefix}webhook_lag_s"] = [p["with"]["webhook_lag_s"] for p in pairs]
    summary[f"{prefix}webhooks_missing"] = [p["with"]["webhooks_missing"] for p in pairs]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--webhook-patience", type=float, default=30.0)
    parser.add_argument("--base", help="a commit whose hub is measured beside this tree's")
    own, rest = parser.parse_known_args(argv)
    args = fanout.parse_args(["--storage", "sqlite", *rest])
    args.hub_arg += ["--webhook-allow-network", "127.0.0.0/8"]
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    receiver = context.Process(target=receiver_main, args=(child,), daemon=True)
    receiver.start()
    base = parent.recv()
    trees = ("pushhub", "base") if own.base else ("pushhub",)
    try:
        with tempfile.TemporaryDirectory(prefix="pushhub-bench-base-") as tmp:
            base_tree = unpack(own.base, tmp) if own.base else None

            def pair(tree: str) -> dict[str, Any]:
                runs = {}
                for label, endpoints in (("without", 0), ("with", own.endpoints)):
                    server = Hub(args.url, storage=args.storage, pid=args.pid, extra_args=args.hub_arg,
                                 tree=base_tree if tree == "base" else None)
                    record = fanout.run(args, server, hooks=Webhooks(parent, base, endpoints, own.webhook_patience))
                    runs[label] = record
                    print(json.dumps({"tree": tree, "label": label, **record}), flush=True)
                return runs

            pairs = interleave(trees, own.runs, pair)
    finally:
        parent.send("close")
        receiver.join(10)
    records = [record for runs in pairs.values() for pair in runs for record in pair.values()]
    summary: dict[str, Any] = {
        "benchmark": "mixed", "runs": own.runs, "endpoints": own.endpoints, "subscribers": args.subscribers,
        "rate": args.rate, "duration": args.duration, "storage": args.storage, "nice": args.nice,
        "base": own.base, "hub_arg": args.hub_arg,
        "loadavg": [min(r["loadavg_start"] for r in records), max(r["loadavg_end"] for r in records)],
        **medians(pairs["pushhub"]),
    }
    if own.base:
        summary.update(medians(pairs["base"], "base_"))
    summary["lost"] = sum(r["lost"] for r in records)
    print(json.dumps(summary), flush=True)
    if not args.no_save:
        for tree, runs in pairs.items():
            for run in runs:
                for label, record in run.items():
                    save_result("mixed", {"tree": tree, "label": label, **record})
        save_result("mixed", summary)
    missing = [m for key, value in summary.items() if key.endswith("webhooks_missing") for m in value]
    ok = summary["lost"] == 0 and not any(missing)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
