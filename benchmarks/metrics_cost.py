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
average. The whole-hub ratios move by more than the metrics cost on a loaded machine, so it also
times the metric updates alone in process (:func:`updates_alone`) and prints them as a share of the
hub CPU per publish and per delivery measured in the same run. The record is appended to
``benchmarks/results/metrics_cost.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
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
    parser.add_argument("--backend", choices=("sqlite", "memory"), default="sqlite", help="the log publishes go to")
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


def measure_publish(tree: str, args: argparse.Namespace) -> dict[str, Any]:
    rate, cost = publish.measure(tree, args, keyed=False)
    return {"publishes_per_s": rate, "hub_cpu_us_per_publish": cost, "loadavg": os.getloadavg()[0]}


def measure_fanout(tree: str, args: argparse.Namespace) -> dict[str, Any]:
    fan = fanout.run(fanout.parse_args(["--transport", "sse", "--subscribers", str(args.subscribers),
                                        "--rate", str(args.rate), "--duration", str(args.duration),
                                        "--storage", "sqlite", "--no-save"]), Hub(storage="sqlite", tree=tree))
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


def updates_alone(calls: int = 200_000, per_turn: int = 8) -> dict[str, float]:
    """The metric updates of the hot paths timed alone in this process, in µs a call: what one
    publish request adds (its HTTP answer counted, its timing and sample) and what one fan-out
    batch adds (its latency sample), each beside the same loop without them (``per_turn`` calls
    per event-loop turn, as a hub answers several requests a turn under load)."""
    from starlette.responses import Response
    from starlette.routing import Route

    sys.path.insert(0, os.path.join(ROOT, "hub"))  # this tree's, wherever pushhub is installed
    from pushhub.metrics import Metrics
    from pushhub.stats import Observer, Stats

    answer = Response(b"", status_code=202)

    async def endpoint(request: Any) -> Response:
        return answer

    class Request:
        method = "POST"

    metrics = Metrics(Stats(), lambda: {"sse_connections": 0, "ws_connections": 0, "active_channels": 0})
    counted = metrics.counted(Route("/v1/channels/{channel}/events", endpoint, methods=["POST"])).endpoint

    async def publishes(handler: Any, observer: Observer, timed: bool) -> float:
        started = time.perf_counter()
        for _ in range(calls // per_turn):
            for _ in range(per_turn):
                begun = time.perf_counter() if timed else 0.0
                await handler(Request)
                if timed:
                    observer.publish(1, time.perf_counter() - begun)
            await asyncio.sleep(0)
        return (time.perf_counter() - started) / calls * 1e6

    async def measure() -> dict[str, float]:
        bare = min([await publishes(endpoint, Observer(), False) for _ in range(3)])
        with_metrics = min([await publishes(counted, metrics, True) for _ in range(3)])
        stamp = "2026-12-01T18:20:00.123456Z"
        batch = min(timeit.timeit(lambda: metrics.delivery(stamp, time.time()), number=calls) for _ in range(3))
        return {"us_per_publish": with_metrics - bare, "us_per_fanout_batch": batch / calls * 1e6}

    return asyncio.run(measure())


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
                   {"figures": spreads, "ratio": cost, "paired_ratio": pairs, "updates_alone": updates_alone()},
                   runs, facts)
    print(heading(f"Metrics on the hot paths ({args.backend} backend)", saved))
    print("\n".join(table([(label, [spreads[key][name] for name in TREES],
                            "-" if cost[key] is None else f"{cost[key]:.3f}   {cell(pairs[key])}")
                           for key, label in FIGURES],
                          list(TREES), "metrics / no-metrics: of the medians, round by round")))
    losses = {name: (sum(r["lost"] for r in runs[name]), sum(r["duplicated"] for r in runs[name])) for name in TREES}
    print(f"  lost / duplicated deliveries: {losses}")
    alone = saved["updates_alone"]
    publish_cpu = (spreads["hub_cpu_us_per_publish"]["no-metrics"] or {}).get("median")
    delivery_cpu = (spreads["hub_us_per_delivery"]["no-metrics"] or {}).get("median")
    print(f"  the updates alone: {alone['us_per_publish']:.2f} µs a publish request"
          + (f" ({alone['us_per_publish'] / publish_cpu:.1%} of its hub CPU)" if publish_cpu else "")
          + f", {alone['us_per_fanout_batch']:.2f} µs a fan-out batch"
          + (f" ({alone['us_per_fanout_batch'] / args.subscribers / delivery_cpu:.2%} of a delivery's "
             f"hub CPU at {args.subscribers} subscribers)" if delivery_cpu else ""))
    print(json.dumps(saved))
    if not args.no_save:
        save_result("metrics_cost", saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
