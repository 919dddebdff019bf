"""Medians of repeated benchmark runs: groups the JSON lines of ``benchmarks/results/*.jsonl`` (or the
files given) by scenario and prints the median and range of each figure.

    python -m benchmarks.summarize
    python -m benchmarks.summarize benchmarks/results/fanout.jsonl --since 2026-11-28T10:30

On a machine shared with other work a single run says little; run each scenario several times,
interleaved with what it is compared to, and read the medians.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
from collections import defaultdict
from typing import Any

from benchmarks.loadgen import RESULTS_DIR

FIGURES = {
    "fanout": ["publish_rate", "delivered_per_s", "p50_ms", "p99_ms", "max_ms", "lost", "duplicated",
               "disconnected", "hub_us_per_delivery", "generator_us_per_delivery", "machine_us_per_delivery",
               "kib_per_idle_conn", "loadavg_start"],
    "connect": ["seconds", "hub_us_per_connect", "kib_per_idle_conn", "failed", "loadavg_start"],
    "floor": ["us_per_send", "sys_us_per_send", "loadavg_start"],
}


def scenario(record: dict[str, Any]) -> tuple[Any, ...]:
    kind = record["benchmark"]
    if kind == "fanout":
        mode = "flat out" if record["flat_out"] else f"{record['rate']:g}/s"
        return (kind, record.get("server", "pushhub"), record["transport"], record["subscribers"], mode,
                record["batch"], record["storage"], record.get("nice", 0), record.get("commit", ""))
    if kind == "connect":
        return (kind, record.get("server", "pushhub"), record["transport"], record["connections"],
                record["storage"], record.get("nice", 0), record.get("commit", ""))
    return (kind, record["sockets"], record["size"])


def summarize(records: list[dict[str, Any]]) -> list[str]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["benchmark"] in FIGURES:  # peer.py's records carry their own medians
            groups[scenario(record)].append(record)
    lines = []
    for key, runs in groups.items():
        parts = [f"{' '.join(str(k) for k in key if k != '')}  ({len(runs)} runs)"]
        for name in FIGURES[runs[0]["benchmark"]]:
            values = [r[name] for r in runs if r.get(name) is not None]
            if values:
                parts.append(f"{name} {statistics.median(values):g} [{min(values):g}-{max(values):g}]")
        lines.append("\n    ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="JSON-lines result files (default: benchmarks/results/*.jsonl)")
    parser.add_argument("--since", default="", help="only runs at or after this ISO date")
    args = parser.parse_args(argv)
    records = []
    for path in args.files or sorted(glob.glob(os.path.join(RESULTS_DIR, "*.jsonl"))):
        with open(path) as f:
            records += [json.loads(line) for line in f if line.startswith("{")]
    records = [r for r in records if r.get("date", "") >= args.since]
    print("\n".join(summarize(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
