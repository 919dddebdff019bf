"""Fan-out benchmark: N subscribers on one channel, events published at R/s (or flat out) for D s.

    python -m benchmarks.fanout --transport sse --subscribers 1000 --rate 100 --duration 10
    python -m benchmarks.fanout --transport ws --subscribers 1000 --rate 100 --duration 10
    python -m benchmarks.fanout --transport sse --subscribers 100 --flat-out --batch 10 --duration 10

Reports delivered messages/s, publish-to-receive latency (p50/p99/max), lost and duplicated
messages (by the sequence numbers in the events, per subscriber), the hub's RSS before and after
connecting (KiB per idle connection) and the hub's CPU time per delivery, measured from /proc. It
starts its own hub (``python -m pushhub serve --memory``, or ``--storage sqlite``) unless ``--url``
names one. Prints a summary and one JSON line, and appends the JSON to
``benchmarks/results/fanout.jsonl``. ``python -m benchmarks.peer`` runs it beside nginx+Nchan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from typing import Any

import uvloop

from benchmarks.loadgen import (
    HttpClient,
    Hub,
    ServerProcess,
    WorkerSpec,
    add_hub_arguments,
    events_body,
    events_for,
    fresh_channel,
    machine_cpu_seconds,
    machine_facts,
    merge_histograms,
    percentile,
    prioritise,
    publish_flat_out,
    raise_fd_limit,
    save_result,
    storage_name,
    user_channel,
    worker_main,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=("sse", "ws"), default="sse")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=1,
                        help="channels the subscribers are spread over (subscriber i follows channel i mod N; "
                             "event s goes to channel s mod N: per-user channels), each event published alone")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of publishing")
    parser.add_argument("--batch", type=int, default=1, help="events per publish request")
    parser.add_argument("--flat-out", action="store_true", help="publish as fast as the hub accepts")
    parser.add_argument("--publishers", type=int, default=4,
                        help="publisher connections; a request waits for a free one")
    parser.add_argument("--pad", type=int, default=0, help="extra bytes of data per event")
    add_hub_arguments(parser, pid_use="CPU and RSS")
    parser.add_argument("--key", default=os.environ.get("PUSHHUB_KEY"), help="publisher key")
    parser.add_argument("--patience", type=float, default=10.0,
                        help="seconds to wait for stragglers after publishing ends")
    args = parser.parse_args(argv)
    if args.channels > 1 and (args.flat_out or args.batch != 1):
        parser.error("--channels publishes each event alone, at --rate")
    return args


async def publish(server: ServerProcess, channel: str, args: argparse.Namespace) -> dict[str, Any]:
    """Publish at ``args.rate`` (or flat out) for ``args.duration`` seconds over a pool of
    keep-alive connections; a request waits for a free connection rather than opening one. The
    events are numbered from 1 in the order their requests are sent."""
    dialect = server.dialect
    headers = f"Authorization: Bearer {args.key}\r\n" if args.key else ""
    pad = b',"pad":"%s"' % (b"x" * args.pad) if args.pad else b""
    if args.flat_out:
        result = await publish_flat_out(dialect, server.host, server.port, channel, in_flight=args.publishers,
                                        duration=args.duration, batch=args.batch, pad=pad, headers=headers)
        if result["first_error"]:
            print(f"publish failed: {result['first_error']}", file=sys.stderr)
        return result
    clients = [await HttpClient.open(server.host, server.port) for _ in range(args.publishers)]
    pool: asyncio.Queue[HttpClient] = asyncio.Queue()
    for client in clients:
        pool.put_nowait(client)
    result = {"published": 0, "requests": 0, "errors": 0}

    async def one(client: HttpClient, first: int) -> None:
        path = dialect.publish_path.format(channel=user_channel(channel, first, args.channels))
        try:
            status, body = await client.post(path, events_body(dialect, first, args.batch, pad), headers)
        finally:
            pool.put_nowait(client)
        result["requests"] += 1
        if status in dialect.accepted:
            result["published"] += args.batch
        else:
            result["errors"] += 1
            if result["errors"] == 1:
                print(f"publish failed: {status} {body[:200]!r}", file=sys.stderr)

    interval = args.batch / args.rate
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    end = start + args.duration
    sent = 0
    while True:
        target = start + sent * interval
        if target >= end or time.monotonic() >= end:
            break
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        client = await pool.get()
        task = asyncio.get_running_loop().create_task(one(client, 1 + sent * args.batch))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    await asyncio.gather(*tasks)
    result["start"] = start
    result["elapsed"] = time.monotonic() - start
    for client in clients:
        client.close()
    return result


async def warm_up(server: ServerProcess, key: str | None) -> None:
    """One publish on another channel, so the baseline RSS includes the code paths used later."""
    client = await HttpClient.open(server.host, server.port)
    headers = f"Authorization: Bearer {key}\r\n" if key else ""
    path = server.dialect.publish_path.format(channel=fresh_channel("warmup"))
    await client.post(path, events_body(server.dialect, 0), headers)
    client.close()


class Hooks:
    """What a scenario built on this one does around the run (``benchmarks.mixed`` adds webhooks)."""

    def prepare(self, hub: ServerProcess, channel: str) -> None:
        """The hub is up; nobody is subscribed or publishing yet."""

    def published(self, hub: ServerProcess, published: dict[str, Any]) -> dict[str, Any]:
        """Publishing ended and the subscribers have reported; the hub is still up. Returns figures
        to add to the record."""
        return {}


def run(args: argparse.Namespace, server: ServerProcess | None = None, hooks: Hooks | None = None) -> dict[str, Any]:
    """One measurement against ``server`` (started here and stopped after), by default the hub
    the options describe; ``hooks`` add to it."""
    hooks = hooks or Hooks()
    raise_fd_limit()
    facts = machine_facts()
    hub = (server or Hub(args.url, storage=args.storage, pid=args.pid, extra_args=args.hub_arg)).start()
    context = multiprocessing.get_context("spawn")
    workers = []
    try:
        channel = fresh_channel("bench")
        shares = [args.subscribers // args.procs + (i < args.subscribers % args.procs) for i in range(args.procs)]
        for n, share in enumerate(shares):
            parent, child = context.Pipe()
            spec = WorkerSpec(args.transport, hub.host, hub.port, channel, share, dialect=hub.dialect.name,
                              channels=args.channels, first=sum(shares[:n]))
            process = context.Process(target=worker_main, args=(child, spec), daemon=True)
            process.start()
            workers.append((process, parent))
        prioritise([hub.pid, os.getpid(), *(process.pid for process, _ in workers)], args.nice)
        hooks.prepare(hub, channel)
        uvloop.run(warm_up(hub, args.key))
        time.sleep(0.5)
        rss_before = hub.rss_kib()
        for _, pipe in workers:
            pipe.send("connect")
        connects = [pipe.recv() for _, pipe in workers]
        connect_seconds = max(c["done"] for c in connects) - min(c["began"] for c in connects)
        time.sleep(1.0)
        rss_idle = hub.rss_kib()
        cpu_before, machine_before = hub.cpu_seconds(), machine_cpu_seconds()
        published = uvloop.run(publish(hub, channel, args))
        for _, pipe in workers:
            pipe.send(("finish", published["published"], args.patience))
        reports = [pipe.recv() for _, pipe in workers]
        extra = hooks.published(hub, published)
        cpu_after, machine_after = hub.cpu_seconds(), machine_cpu_seconds()
        rss_after = hub.rss_kib()
        for _, pipe in workers:
            pipe.send("close")
        for process, _ in workers:
            process.join(10)
    finally:
        for process, _ in workers:
            if process.is_alive():
                process.terminate()
        hub.stop()

    histogram = merge_histograms([r["histogram"] for r in reports])
    received = sum(r["received"] for r in reports)
    last_receive = max((r["last_receive"] for r in reports), default=0.0)
    span = max(last_receive - published["start"], published["elapsed"])
    connected = sum(len(c["delays"]) for c in connects)
    record: dict[str, Any] = {
        "benchmark": "fanout",
        "server": hub.dialect.name,
        "transport": args.transport,
        "storage": storage_name(args, server),
        "subscribers": args.subscribers,
        "channels": args.channels,
        "connected": connected,
        "rate": None if args.flat_out else args.rate,
        "flat_out": args.flat_out,
        "batch": args.batch,
        "publishers": args.publishers,
        "procs": args.procs,
        "nice": args.nice,
        "duration": args.duration,
        "published": published["published"],
        "publish_rate": round(published["published"] / published["elapsed"], 1),
        "publish_errors": published["errors"],
        "publisher_us_per_request": published.get("publisher_us_per_request"),
        "expected": sum(events_for(i, published["published"], args.channels) for i in range(connected)),
        "received": received,
        "delivered_per_s": round(received / span, 1) if span else None,
        "p50_ms": round(percentile(histogram, 0.50), 2),
        "p99_ms": round(percentile(histogram, 0.99), 2),
        "max_ms": round(percentile(histogram, 1.0), 2),
        "lost": sum(r["lost"] for r in reports),
        "duplicated": sum(r["duplicated"] for r in reports),
        "disconnected": sum(r["disconnected"] for r in reports),
        "connect_s": round(connect_seconds, 3),
        "connect_failed": sum(c["failed"] for c in connects),
        "rss_before_kib": rss_before,
        "rss_idle_kib": rss_idle,
        "rss_after_kib": rss_after,
        "kib_per_idle_conn": round((rss_idle - rss_before) / connected, 2)
        if rss_idle is not None and rss_before is not None and connected else None,
        **cpu_figures("hub", cpu_before, cpu_after, received),
        **cpu_figures("generator", *generator_cpu(connects, reports), received),
        "machine_us_per_delivery": round((machine_after - machine_before) / received * 1e6, 2)
        if machine_before is not None and machine_after is not None and received else None,
        **extra,
        **facts,
        "loadavg_end": os.getloadavg()[0],
    }
    return record


def cpu_figures(who: str, before: tuple[float, float] | None, after: tuple[float, float] | None,
                deliveries: int) -> dict[str, Any]:
    """CPU seconds (user, system) spent between two readings, and per delivery (us)."""
    if before is None or after is None:
        return {f"{who}_cpu_user_s": None, f"{who}_cpu_sys_s": None, f"{who}_us_per_delivery": None}
    user, system = after[0] - before[0], after[1] - before[1]
    return {
        f"{who}_cpu_user_s": round(user, 2),
        f"{who}_cpu_sys_s": round(system, 2),
        f"{who}_us_per_delivery": round((user + system) / deliveries * 1e6, 2) if deliveries else None,
    }


def generator_cpu(connects: list[dict[str, Any]], reports: list[dict[str, Any]]) -> tuple[tuple[float, float], ...]:
    before = (sum(c["cpu"][0] for c in connects), sum(c["cpu"][1] for c in connects))
    after = (sum(r["cpu"][0] for r in reports), sum(r["cpu"][1] for r in reports))
    return before, after


def summary(r: dict[str, Any]) -> str:
    mode = "flat out" if r["flat_out"] else f"{r['rate']:g} events/s"
    lines = [
        f"fanout {r['server']} {r['transport']}: {r['connected']}/{r['subscribers']} subscribers, {mode} for "
        f"{r['duration']:g} s "
        f"(batch {r['batch']}, {r['publishers']} publisher conn), {r['storage']} log, {r['procs']} generator proc(s)",
        f"  published  {r['published']} events ({r['publish_rate']:g}/s, {r['publish_errors']} errors)",
        f"  delivered  {r['received']} of {r['expected']} ({r['delivered_per_s']:g} messages/s)",
        f"  latency    p50 {r['p50_ms']} ms   p99 {r['p99_ms']} ms   max {r['max_ms']} ms",
        f"  lost {r['lost']}   duplicated {r['duplicated']}   disconnected {r['disconnected']}",
        f"  hub CPU    {r['hub_us_per_delivery']} us/delivery (user {r['hub_cpu_user_s']} s,"
        f" system {r['hub_cpu_sys_s']} s)",
        f"  hub RSS    {r['rss_before_kib']} KiB -> {r['rss_idle_kib']} KiB idle ({r['kib_per_idle_conn']} KiB/conn)"
        f" -> {r['rss_after_kib']} KiB after",
        f"  connect    {r['connected']} in {r['connect_s']} s ({r['connect_failed']} failed)",
        f"  generator  {r['generator_us_per_delivery']} us/delivery (user {r['generator_cpu_user_s']} s,"
        f" system {r['generator_cpu_sys_s']} s); load average {r['loadavg_start']:.2f} -> {r['loadavg_end']:.2f}"
        f" on {r['nproc']} cores",
        f"  machine    {r['machine_us_per_delivery']} us/delivery (every core's busy time: server, generator, kernel)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    record = run(args)
    print(summary(record))
    print(json.dumps(record))
    if not args.no_save:
        save_result("fanout", record)
    return 0 if record["lost"] == 0 and record["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
