"""The latest comparisons of ``benchmarks/results`` (peer.py, floor.py stack and client) as the
Markdown tables of the README's Performance section, so that the figures there are copied from
the saved runs, not typed.

    python -m benchmarks.comparisons                       # the latest run of each comparison
    python -m benchmarks.comparisons --since 2026-12-01T16:15
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Any

from benchmarks.loadgen import RESULTS_DIR
from benchmarks.peer import BY_NAME
from benchmarks.report import cell

STACK = {"bare": "bare uvicorn+httptools", "http11": "bare app on pushhub's http11 (lean route)",
         "http11-sqlite": "the same, storing each body in SQLite (group commit)",
         "pushhub-memory": "pushhub, memory log", "pushhub-sqlite": "pushhub, SQLite log",
         "base-memory": "pushhub --base, memory log", "base-sqlite": "pushhub --base, SQLite log"}
CLIENT = {"aiohttp": "bare aiohttp", "httpx": "bare httpx", "pushhub": "pushhub webhooks"}


def latest(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        key = (record["benchmark"], record.get("scenario", "paced" if record.get("rate") else ""))
        if key[0] in ("peer", "floor-stack", "floor-client") and not record.get("quick"):
            chosen[key] = record  # files are in time order: the last one wins
    return chosen


def facts(record: dict[str, Any]) -> str:
    loads = [r.get("loadavg", r.get("loadavg_start")) for runs in record["records"].values() for r in runs]
    return (f"{record['date'][:16].replace('T', ' ')} UTC, commit {record['commit']}, {record['runs']} runs, "
            f"load average {min(loads):.1f}-{max(loads):.1f}")


def peer_table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| scenario | figure | pushhub | nginx+Nchan | pushhub / Nchan |", "|---|---|---|---|---|"]
    for record in records:
        scenario = BY_NAME[record["scenario"]]
        for figure in scenario.figures:
            entry = record["figures"].get(figure.key)
            if entry is None:
                continue
            shown = "-" if entry["ratio"] is None else f"{entry['ratio']:.2f}"
            lines.append(f"| {record['scenario']} | {figure.label} ({figure.better} is better) | "
                         f"{cell(entry['pushhub'])} | {cell(entry['nchan'])} | {shown} |")
        ours, theirs = record["losses"]["pushhub"], record["losses"]["nchan"]
        lines.append(f"| {record['scenario']} | lost / duplicated | {ours['lost']} / {ours['duplicated']} | "
                     f"{theirs['lost']} / {theirs['duplicated']} | |")
    return lines


def floor_table(record: dict[str, Any], names: dict[str, str], key: str, label: str, reference: str) -> list[str]:
    lines = [f"| {label} | median [range] | pushhub / {names[reference]} |", "|---|---|---|"]
    for name, title in names.items():
        if name not in record[key]:  # a contender the record's run did not have
            continue
        spread = record[key][name]
        share = "" if name == reference or spread is None or record[key][reference] is None else \
            f"{spread['median'] / record[key][reference]['median']:.2f}"
        lines.append(f"| {title} | {cell(spread)} | {share} |")
    return lines


def markdown(records: list[dict[str, Any]]) -> str:
    chosen = latest(records)
    out = []
    peers = [r for (kind, _), r in chosen.items() if kind == "peer"]
    if peers:
        out += [f"pushhub beside nginx+Nchan ({facts(peers[0])} for the first scenario):", "", *peer_table(peers), ""]
    if stack := chosen.get(("floor-stack", "")):
        out += [f"Flat-out publish, {stack['in_flight']} in flight ({facts(stack)}):", "",
                *floor_table(stack, STACK, "publish_rate", "publishes/s", "bare"), ""]
    if client := chosen.get(("floor-client", "")):
        out += [f"POSTs to a fast receiver, {client['in_flight']} in flight ({facts(client)}):", "",
                *floor_table(client, CLIENT, "per_s", "requests/s", "aiohttp"), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--since", default="", help="only runs at or after this ISO date")
    args = parser.parse_args(argv)
    records = []
    for name in ("peer", "floor"):
        for path in glob.glob(os.path.join(RESULTS_DIR, f"{name}.jsonl")):
            with open(path) as f:
                records += [json.loads(line) for line in f if line.startswith("{")]
    print(markdown([r for r in records if r.get("date", "") >= args.since]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
