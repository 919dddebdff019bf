"""One hub process against ``--workers 2`` on one throwaway Redis, interleaved in one run: flat-out
publishing (with the Redis commands each publish cost, counted by Redis), live fan-out, and outgoing
webhooks.

    python -m benchmarks.workers [--runs 3] [--duration 5] [--subscribers 500] [--webhook-events 5000]

* ``publish``: single events flat out (``--in-flight`` requests at a time) into one channel with one
  SSE subscriber; publishes/s, the hubs' CPU per publish (all their processes), and the Redis
  commands per publish. Those are counted in a second, shorter run of the same kind
  (``--count-duration``) with ``redis-cli monitor`` recording every command, which tells the
  commands the hub sends (``evalsha``, ``get``…; the record's ``client_round_trips_per_publish``,
  although the ``evalsha`` calls of one loop turn share one round trip, a pipeline) from those its
  scripts run (``[db lua]`` in the record); a command name alone does not, as ``HGET`` is both. The
  monitor slows Redis, so the timed run goes without it.
* ``fanout``: ``--subscribers`` SSE subscribers (spread over the workers by the kernel) at
  ``--rate`` events/s; delivered/s, p99 latency, CPU per delivery.
* ``webhooks``: ``benchmarks.webhooks --scenario throughput`` on the same Redis: deliveries/s to one
  fast receiver.

Appends the record to ``benchmarks/results/workers.jsonl``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from typing import Any

from benchmarks import fanout
from benchmarks.loadgen import ROOT, Hub, machine_facts, save_result
from benchmarks.report import figures, heading, interleave, record, table
from tests.redis_servers import RedisServer, running

SETUPS = {"1 process": [], "--workers 2": ["--workers", "2"]}
MONITORED = re.compile(r'^[0-9.]+ \[(\d+) (lua|[^\]]+)\] "([^"]*)"')


def monitored_commands(lines: Iterable[str], db: int) -> dict[tuple[str, str], int]:
    """``redis-cli monitor`` output counted by ``("client" | "lua", command)``, for database ``db``."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in lines:
        found = MONITORED.match(line)
        if found is not None and int(found[1]) == db:
            counts["lua" if found[2] == "lua" else "client", found[3].lower()] += 1
    return dict(counts)


def publish_run(args: argparse.Namespace, duration: float, hub_args: list[str]) -> dict[str, Any]:
    return fanout.run(fanout.parse_args(["--subscribers", "1", "--flat-out", "--publishers", str(args.in_flight),
                                         "--duration", str(duration), "--no-save"]),
                      Hub(storage="sqlite", extra_args=hub_args))


def commands_per_publish(args: argparse.Namespace, server: RedisServer, setup: str) -> tuple[dict[str, float], int]:
    """A publish run of ``--count-duration`` seconds on a fresh database with every command recorded:
    ``{"evalsha": 1.0, "lua hset": 2.0, …}`` per publish (script commands prefixed ``lua``), and the
    events that run lost."""
    url = server.fresh_url()
    with tempfile.TemporaryFile("w+") as out:
        monitor = subprocess.Popen(["redis-cli", "-p", str(server.port), "monitor"], stdout=out)
        try:
            published = publish_run(args, args.count_duration, ["--redis", url, *SETUPS[setup]])
        finally:
            monitor.terminate()
            monitor.wait()
        out.seek(0)
        counts = monitored_commands(out, int(url.rsplit("/", 1)[1]))
    count = published["published"] or 1
    return ({(name if source == "client" else f"lua {name}"): round(n / count, 3)
             for (source, name), n in sorted(counts.items())}, published["lost"])


def measure(setup: str, args: argparse.Namespace, server: RedisServer) -> dict[str, Any]:
    published = publish_run(args, args.duration, ["--redis", server.fresh_url(), *SETUPS[setup]])
    count = published["published"] or 1
    per_publish, lost_counting = commands_per_publish(args, server, setup)
    fanned = fanout.run(fanout.parse_args(["--subscribers", str(args.subscribers), "--rate", str(args.rate),
                                           "--duration", str(args.duration), "--procs", "2", "--no-save"]),
                        Hub(storage="sqlite", extra_args=["--redis", server.fresh_url(), *SETUPS[setup]]))
    hooks = subprocess.run([sys.executable, "-m", "benchmarks.webhooks", "--scenario", "throughput", "--rounds", "1",
                            "--events", str(args.webhook_events), "--floor", "aiohttp", "--redis", server.fresh_url(),
                            *(f"--hub-arg={a}" for a in SETUPS[setup]), "--no-save"],
                           cwd=ROOT, capture_output=True, text=True, check=True)
    webhooks = json.loads(next(line for line in hooks.stdout.splitlines() if line.startswith("{")))
    return {
        "setup": setup,
        "publish_rate": published["publish_rate"],
        "hub_us_per_publish": round(((published["hub_cpu_user_s"] or 0) + (published["hub_cpu_sys_s"] or 0))
                                    / count * 1e6, 2),
        "client_round_trips_per_publish": round(sum(n for name, n in per_publish.items()
                                                    if not name.startswith("lua ")), 3),
        "redis_commands_per_publish": per_publish,
        "publish_lost": published["lost"] + lost_counting,
        "fanout_delivered_per_s": fanned["delivered_per_s"],
        "fanout_p99_ms": fanned["p99_ms"],
        "fanout_hub_us_per_delivery": fanned["hub_us_per_delivery"],
        "fanout_lost": fanned["lost"],
        "webhooks_per_s": webhooks["hub_median"],
        "loadavg": round(os.getloadavg()[0], 2),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of publishing per measurement")
    parser.add_argument("--count-duration", type=float, default=2.0,
                        help="seconds of the publish run whose Redis commands are recorded")
    parser.add_argument("--in-flight", type=int, default=32, help="publish requests in flight (publish)")
    parser.add_argument("--subscribers", type=int, default=500, help="SSE subscribers (fanout)")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second (fanout)")
    parser.add_argument("--webhook-events", type=int, default=5000, help="events (webhooks)")
    parser.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")
    return parser.parse_args(argv)


KEYS = (("publish_rate", "publishes/s"), ("hub_us_per_publish", "hub CPU us/publish"),
        ("client_round_trips_per_publish", "Redis commands sent/publish"),
        ("fanout_delivered_per_s", "fan-out delivered/s"), ("fanout_p99_ms", "fan-out p99 ms"),
        ("fanout_hub_us_per_delivery", "fan-out hub CPU us/delivery"), ("webhooks_per_s", "webhook deliveries/s"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    with tempfile.TemporaryDirectory(prefix="pushhub-bench-redis-") as directory:
        server = RedisServer(directory)
        with running(server):
            runs = interleave(tuple(SETUPS), args.runs, lambda setup: measure(setup, args, server))
    saved = record("workers", {"runs": args.runs, "duration": args.duration, "subscribers": args.subscribers},
                   {key: figures(runs, key) for key, _ in KEYS}, runs, facts)
    print("\n".join([heading("one process against --workers 2 on one Redis", saved),
                     *table([(label, [saved[key][s] for s in SETUPS], "") for key, label in KEYS], list(SETUPS), ""),
                     *(f"  {setup} run {n}: Redis commands per publish {r['redis_commands_per_publish']}, lost "
                       f"{r['publish_lost']} + {r['fanout_lost']}" for setup in SETUPS
                       for n, r in enumerate(runs[setup], 1))]))
    print(json.dumps({key: value for key, value in saved.items() if key != "records"}))
    if not args.no_save:
        save_result("workers", saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
