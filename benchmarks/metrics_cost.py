"""What the metrics cost on the publish and fan-out hot paths: this tree beside the same tree with
the metric updates taken out of those paths, side by side in one run.

    python -m benchmarks.metrics_cost [--rounds 5] [--requests 10000] [--subscribers 500] [--duration 8]

The second tree is this checkout's committed ``HEAD`` unpacked with ``git archive`` and patched with
``benchmarks/metrics_off.patch``, which removes the publish timing and its histogram sample, the
per-batch delivery latency sample and the HTTP request counter (the plain integers of
``pushhub.stats`` stay: the dashboard reads them, and they predate the metrics). Nothing in the
product can switch metrics off; if the patch no longer applies, the script says so and stops.

Each round runs both trees side by side (two hubs at the same time, so that whatever else loads
the machine loads both alike), with each workload in turn:

* publish: a fresh hub on the SQLite backend (the default), ``--requests`` single-event POSTs, 32
  in flight (:func:`benchmarks.publish.measure`);
* fan-out: a fresh hub on SQLite, ``--subscribers`` SSE subscribers of one channel, 100 events/s
  for ``--duration`` s (:func:`benchmarks.fanout.run`).

It prints the median and range of the hub's CPU time per publish and per delivery (read from
/proc, less disturbed by other load than the rates) and of the rates for each tree, the cost of the
metrics as the ratio of the medians and as the median of the round-by-round ratios, and the load
average; the record is appended to
``benchmarks/results/metrics_cost.jsonl``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks import fanout, publish
from benchmarks.loadgen import ROOT, Hub, machine_facts, save_result
from benchmarks.report import cell, figures, heading, ratio, record, spread, table

PATCH = os.path.join(ROOT, "benchmarks", "metrics_off.patch")
TREES = ("metrics", "no-metrics")
FIGURES = (("hub_cpu_us_per_publish", "hub CPU µs per publish"), ("publishes_per_s", "publishes/s"),
           ("hub_us_per_delivery", "hub CPU µs per delivery"), ("delivered_per_s", "deliveries/s"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per tree")
    parser.add_argument("--requests", type=int, default=10000, help="publishes per publish run")
    parser.add_argument("--in-flight", dest="concurrency", type=int, default=32, help="publish requests in flight")
    parser.add_argument("--subscribers", type=int, default=500, help="SSE subscribers per fan-out run")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of publishing per fan-out run")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second in a fan-out run")
    parser.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")
    return parser.parse_args(argv)


def without_metrics(into: str) -> str:
    """``HEAD`` unpacked into ``into`` with the metric updates taken off the hot paths."""
    publish.unpack("HEAD", into)
    applied = subprocess.run(["git", "apply", PATCH], cwd=into, capture_output=True, text=True,
                             check=False)
    if applied.returncode != 0:
        raise SystemExit(f"{PATCH} no longer applies to HEAD: update it to remove the metric updates from "
                         f"the hot paths again\n{applied.stderr}")
    return into


class TreeHub(Hub):
    """A hub run from the ``hub/`` package of ``tree``."""

    def __init__(self, tree: str) -> None:
        super().__init__(storage="sqlite")
        self.tree = tree

    def start(self) -> TreeHub:
        self.data_dir = tempfile.mkdtemp(prefix="pushhub-bench-metrics-")
        self.launch([sys.executable, "-m", "pushhub", "serve", "--port", str(self.port), "--data-dir", self.data_dir],
                    self.url + "/healthz", "hub", env={**os.environ, "PYTHONPATH": os.path.join(self.tree, "hub")})
        return self


def measure_publish(tree: str, args: argparse.Namespace) -> dict[str, Any]:
    rate, cost = publish.measure(tree, args, keyed=False)
    return {"publishes_per_s": rate, "hub_cpu_us_per_publish": cost, "loadavg": os.getloadavg()[0]}


def measure_fanout(tree: str, args: argparse.Namespace) -> dict[str, Any]:
    fan = fanout.run(fanout.parse_args(["--transport", "sse", "--subscribers", str(args.subscribers),
                                        "--rate", str(args.rate), "--duration", str(args.duration),
                                        "--storage", "sqlite", "--no-save"]), TreeHub(tree))
    return {key: fan[key] for key in ("hub_us_per_delivery", "delivered_per_s", "lost", "duplicated", "received",
                                      "expected")}


def rounds(trees: dict[str, str], args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """``args.rounds`` rounds; in each, both trees run the publish workload at the same time, then
    both the fan-out workload, so whatever else loads the machine loads both alike (started in an
    order that rotates from round to round)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for index in range(args.rounds):
        order = list(trees)[index % 2:] + list(trees)[:index % 2]
        done: dict[str, dict[str, Any]] = {name: {} for name in trees}
        for workload in (measure_publish, measure_fanout):
            with concurrent.futures.ThreadPoolExecutor(len(order)) as pool:
                results = list(pool.map(workload, [trees[name] for name in order], [args] * len(order)))
            for name, result in zip(order, results, strict=True):
                done[name].update(result)
        for name in trees:
            runs[name].append(done[name])
    return runs


def paired(runs: dict[str, list[dict[str, Any]]], key: str) -> dict[str, float] | None:
    """The spread of the round-by-round ratios metrics / no-metrics (each pair measured at the same
    time, so a change of the machine's load moves both)."""
    return spread([a[key] / b[key] for a, b in zip(runs["metrics"], runs["no-metrics"], strict=True)
                   if a.get(key) and b.get(key)])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    with tempfile.TemporaryDirectory(prefix="pushhub-no-metrics-") as off:
        trees = {"metrics": ROOT, "no-metrics": without_metrics(off)}
        runs = rounds(trees, args)
    spreads = {key: figures(runs, key) for key, _ in FIGURES}
    cost = {key: ratio(spreads[key]["metrics"], spreads[key]["no-metrics"]) for key, _ in FIGURES}
    pairs = {key: paired(runs, key) for key, _ in FIGURES}
    saved = record("metrics-cost", {"runs": args.rounds, "requests": args.requests, "in_flight": args.concurrency,
                                    "subscribers": args.subscribers, "rate": args.rate, "duration": args.duration},
                   {"figures": spreads, "ratio": cost, "paired_ratio": pairs}, runs, facts)
    print(heading("Metrics on the hot paths (SQLite backend)", saved))
    print("\n".join(table([(label, [spreads[key][name] for name in TREES],
                            "-" if cost[key] is None else f"{cost[key]:.3f}   {cell(pairs[key])}")
                           for key, label in FIGURES],
                          list(TREES), "metrics / no-metrics: of the medians, round by round")))
    losses = {name: (sum(r["lost"] for r in runs[name]), sum(r["duplicated"] for r in runs[name])) for name in TREES}
    print(f"  lost / duplicated deliveries: {losses}")
    print(json.dumps(saved))
    if not args.no_save:
        save_result("metrics_cost", saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
