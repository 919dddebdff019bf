"""Connect benchmark: how long N SSE or WebSocket subscriptions take to be established, and what an
idle one costs the hub in memory.

    python -m benchmarks.connect --transport sse --connections 5000
    python -m benchmarks.connect --transport ws --connections 5000
    python -m benchmarks.connect --transport ws --base main --runs 3 --nice -10

With ``--base COMMIT`` the hub of that commit and this checkout's are measured in turn, ``--runs``
times each, and the medians printed side by side (every run is saved, its ``tree`` named).
A connection counts as established when the hub has confirmed its subscription: the SSE stream's
starting ``id:`` frame, or the WebSocket ``subscribed`` reply. At most ``--concurrency`` connection
attempts are in flight per generator process. Prints a summary and one JSON line, and appends the
JSON to ``benchmarks/results/connect.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks.loadgen import (
    PUSHHUB,
    PUSHHUB_MESSAGES,
    Hub,
    ServerProcess,
    WorkerSpec,
    add_hub_arguments,
    fresh_channel,
    machine_facts,
    prioritise,
    raise_fd_limit,
    save_result,
    storage_name,
    worker_main,
)
from benchmarks.publish import unpack


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=("sse", "ws"), default="sse")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=500, help="attempts in flight per process")
    parser.add_argument("--ws-subscribe", choices=("url", "message"), default="url",
                        help="how a pushhub WebSocket subscribes: in the handshake's URL (one round trip, "
                             "as with Nchan) or with a subscribe message after it")
    parser.add_argument("--base", default=None, help="a commit whose hub is measured in turn with this one's")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs per server when servers are compared (--base, benchmarks.connect_floor)")
    add_hub_arguments(parser, pid_use="RSS")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, server: ServerProcess | None = None) -> dict[str, Any]:
    """One measurement against ``server`` (started here and stopped after), by default the hub
    the options describe."""
    raise_fd_limit()
    facts = machine_facts()
    hub = (server or Hub(args.url, storage=args.storage, pid=args.pid, extra_args=args.hub_arg)).start()
    context = multiprocessing.get_context("spawn")
    workers = []
    try:
        channel = fresh_channel("connect")
        dialect = hub.dialect.name
        if dialect == PUSHHUB.name and args.ws_subscribe == "message":
            dialect = PUSHHUB_MESSAGES.name
        shares = [args.connections // args.procs + (i < args.connections % args.procs) for i in range(args.procs)]
        for share in shares:
            parent, child = context.Pipe()
            spec = WorkerSpec(args.transport, hub.host, hub.port, channel, share, concurrency=args.concurrency,
                              dialect=dialect)
            process = context.Process(target=worker_main, args=(child, spec), daemon=True)
            process.start()
            workers.append((process, parent))
        prioritise([hub.pid, os.getpid(), *(process.pid for process, _ in workers)], args.nice)
        time.sleep(0.5)
        rss_before = hub.rss_kib()
        cpu_before = hub.cpu_seconds()
        for _, pipe in workers:
            pipe.send("connect")
        reports = [pipe.recv() for _, pipe in workers]
        cpu_after = hub.cpu_seconds()
        time.sleep(1.0)
        rss_idle = hub.rss_kib()
        for _, pipe in workers:
            pipe.send(("finish", 0, 0.0))
        for _, pipe in workers:
            pipe.recv()
            pipe.send("close")
        for process, _ in workers:
            process.join(10)
    finally:
        for process, _ in workers:
            if process.is_alive():
                process.terminate()
        hub.stop()

    delays = sorted(d for r in reports for d in r["delays"])
    generator_cpu = sum(sum(r["cpu"]) - sum(r["cpu_start"]) for r in reports)
    connected = len(delays)
    elapsed = max(r["done"] for r in reports) - min(r["began"] for r in reports)
    return {
        "benchmark": "connect",
        "server": hub.dialect.name,
        "transport": args.transport,
        "storage": storage_name(args, server),
        "connections": args.connections,
        "connected": connected,
        "failed": sum(r["failed"] for r in reports),
        "failures": [f for r in reports for f in r["failures"]][:5],
        "concurrency": args.concurrency,
        "ws_subscribe": args.ws_subscribe if args.transport == "ws" else None,
        "procs": args.procs,
        "nice": args.nice,
        "seconds": round(elapsed, 3),
        "per_s": round(connected / elapsed, 1) if elapsed else None,
        "p50_ms": round(delays[connected // 2] * 1000, 2) if delays else None,
        "p99_ms": round(delays[min(connected - 1, int(connected * 0.99))] * 1000, 2) if delays else None,
        "hub_us_per_connect": round((sum(cpu_after) - sum(cpu_before)) / connected * 1e6, 1)
        if cpu_before is not None and cpu_after is not None and connected else None,
        "generator_us_per_connect": round(generator_cpu / connected * 1e6, 1) if connected else None,
        "rss_before_kib": rss_before,
        "rss_idle_kib": rss_idle,
        "kib_per_idle_conn": round((rss_idle - rss_before) / connected, 2)
        if rss_idle is not None and rss_before is not None and connected else None,
        **facts,
        "loadavg_end": os.getloadavg()[0],
    }


def summary(r: dict[str, Any]) -> str:
    return "\n".join([
        f"connect {r['server']} {r['transport']}: {r['connected']}/{r['connections']} subscribed in {r['seconds']} s "
        f"({r['per_s']:g}/s, {r['failed']} failed; {r['concurrency']} in flight x {r['procs']} proc(s))",
        f"  per connection  p50 {r['p50_ms']} ms   p99 {r['p99_ms']} ms   hub CPU {r['hub_us_per_connect']} us   "
        f"generator CPU {r['generator_us_per_connect']} us",
        f"  hub RSS         {r['rss_before_kib']} KiB -> {r['rss_idle_kib']} KiB ({r['kib_per_idle_conn']} KiB/conn)",
        f"  load average    {r['loadavg_start']:.2f} -> {r['loadavg_end']:.2f} on {r['nproc']} cores",
    ])


COMPARED = ("seconds", "hub_us_per_connect", "generator_us_per_connect", "kib_per_idle_conn", "loadavg_start")


def interleaved(args: argparse.Namespace, servers: dict[str, Callable[[], ServerProcess]]) -> list[dict[str, Any]]:
    """Each of ``servers`` (a name and how to make it) measured in turn, ``args.runs`` times; every
    record named by its ``tree``, and the medians and ranges printed side by side."""
    records: list[dict[str, Any]] = []
    for _ in range(args.runs):
        for name, server in servers.items():
            record = run(args, server())
            record["tree"] = name
            print(summary(record).replace("connect pushhub", f"connect {name}"))
            records.append(record)
    for name in servers:
        mine = [r for r in records if r["tree"] == name]
        print(f"{name:>12} medians of {len(mine)}: " + ", ".join(
            f"{key} {statistics.median(r[key] for r in mine):g} "
            f"({min(r[key] for r in mine):g}-{max(r[key] for r in mine):g})" for key in COMPARED))
    return records


def finish(args: argparse.Namespace, records: list[dict[str, Any]]) -> int:
    """Print and save ``records``; the exit status says whether every connection was made."""
    for record in records:
        print(json.dumps(record))
        if not args.no_save:
            save_result("connect", record)
    return 0 if all(record["failed"] == 0 for record in records) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.base is None:
        record = run(args)
        print(summary(record))
        return finish(args, [record])
    with tempfile.TemporaryDirectory(prefix="pushhub-base-") as base_dir:
        base = unpack(args.base, base_dir)
        return finish(args, interleaved(args, {
            f"base {args.base}": lambda: Hub(storage=args.storage, extra_args=args.hub_arg, tree=base),
            "this": lambda: Hub(storage=args.storage, extra_args=args.hub_arg)}))


if __name__ == "__main__":
    sys.exit(main())
