"""Publishes per second through a real hub on the embedded SQLite backend (or ``--backend memory``),
without and with an ``Idempotency-Key``, for this tree and for other commits (the reference),
interleaved in one run.

    python -m benchmarks.publish [--base COMMIT]... [--backend sqlite|memory] [--requests 2000]
                                 [--concurrency 8] [--rounds 3]

Each round starts a fresh hub of each tree in turn (a new data directory), sends ``--requests``
single-event publishes over ``--concurrency`` keep-alive connections, each request waiting for its
answer, and stops it. The other commits are unpacked with ``git archive`` and run from there. Prints
the median rate and hub CPU time per publish of each tree and mode, the load average, and one JSON line appended to
``benchmarks/results/publish.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from benchmarks.loadgen import ROOT, HttpClient, free_port, machine_facts, save_result

BODY = b'{"type":"bench.publish","data":{"n":1,"pad":"' + b"x" * 200 + b'"}}'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", action="append", help="a commit to compare with (repeat; default 169bdd5)")
    parser.add_argument("--backend", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")
    return parser.parse_args(argv)


def unpack(commit: str, into: str) -> str:
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return into


def start_hub(tree: str, data_dir: str, backend: str = "sqlite") -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.path.join(tree, "hub")}
    store = ["--memory"] if backend == "memory" else ["--data-dir", data_dir]
    process = subprocess.Popen([sys.executable, "-m", "pushhub", "serve", "--port", str(port), *store],
                               cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hub of {tree} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                if response.status == 200:
                    return process, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("hub did not become healthy")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def publish_all(pid: int, port: int, requests: int, concurrency: int, keyed: bool) -> tuple[float, float]:
    """Publishes per second over ``concurrency`` connections, and the hub's CPU microseconds per publish
    (which other load on the machine disturbs much less than the rate)."""
    clients = [await HttpClient.open("127.0.0.1", port) for _ in range(concurrency)]
    numbers = iter(range(requests // 10))  # a warm-up on one connection, not timed

    async def run(client: HttpClient, tag: int) -> None:
        for n in numbers:
            headers = f"Idempotency-Key: k-{tag}-{n}\r\n" if keyed else ""
            status, body = await client.post("/v1/channels/bench/events", BODY, headers)
            if status != 202:
                raise RuntimeError(f"publish answered {status}: {body[:200]!r}")

    try:
        await run(clients[0], 0)
        numbers = iter(range(requests // 10, requests))
        started, cpu = time.perf_counter(), cpu_seconds(pid)
        await asyncio.gather(*(run(c, i) for i, c in enumerate(clients)))
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    finally:
        for client in clients:
            client.close()
    timed = requests - requests // 10
    return timed / elapsed, cpu / timed * 1e6


def measure(tree: str, args: argparse.Namespace, keyed: bool) -> tuple[float, float]:
    data_dir = tempfile.mkdtemp(prefix="pushhub-bench-publish-")
    process, port = start_hub(tree, data_dir, args.backend)
    try:
        return asyncio.run(publish_all(process.pid, port, args.requests, args.concurrency, keyed))
    finally:
        process.terminate()
        process.wait(15)
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    with tempfile.TemporaryDirectory(prefix="pushhub-base-") as base_dir:
        trees = {base: unpack(base, tempfile.mkdtemp(dir=base_dir)) for base in args.base or ["169bdd5"]}
        trees["this"] = ROOT
        labels = [f"{name} {mode}" for name in trees for mode in ("plain", "keyed")]
        rates: dict[str, list[float]] = {label: [] for label in labels}
        costs: dict[str, list[float]] = {label: [] for label in labels}
        for _ in range(args.rounds):
            for mode in ("plain", "keyed"):
                for name, tree in trees.items():
                    rate, cost = measure(tree, args, mode == "keyed")
                    rates[f"{name} {mode}"].append(rate)
                    costs[f"{name} {mode}"].append(cost)
    medians = {label: {"publishes_per_s": statistics.median(rates[label]),
                       "hub_cpu_us_per_publish": statistics.median(costs[label])} for label in labels}
    record: dict[str, Any] = {**facts, "loadavg_end": os.getloadavg()[0], "backend": args.backend,
                              "requests": args.requests,
                              "concurrency": args.concurrency, "publishes_per_s": rates,
                              "hub_cpu_us_per_publish": costs, "median": medians}
    for label in labels:
        rounds = ", ".join(f"{r:.0f}/s {c:.0f} µs" for r, c in zip(rates[label], costs[label], strict=True))
        print(f"{label:>16}: {medians[label]['publishes_per_s']:7.0f} publishes/s, "
              f"{medians[label]['hub_cpu_us_per_publish']:5.0f} µs hub CPU per publish (rounds: {rounds})")
    print(f"load average {facts['loadavg_start']:.2f} at start, {record['loadavg_end']:.2f} at end")
    print(json.dumps(record))
    if not args.no_save:
        save_result("publish", record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
