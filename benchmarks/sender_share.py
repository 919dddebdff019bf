"""The hub's own share of a webhook delivery, without HTTP: what the sender costs beside the client.

    python -m benchmarks.sender_share --endpoints 1 --batch 100 --events 20000 --base main
    python -m benchmarks.sender_share --endpoints 10 --batch 1 --rate 100 --events 500

One process per run: a hub on a SQLite log in a temporary directory and its webhook dispatcher, in
process, with ``--endpoints`` endpoints following one channel and a client that answers 200 at once
without sending anything (the dispatcher's client factory is the seam), publishing ``--events``
events in publishes of ``--batch`` (flat out, or ``--rate`` events/s). Measured per delivery: the
main thread's CPU time (the intake, the workers, signing, recording, the appends; not the
checkpoints, which run on a thread of their own) and, counted by SQLite's trace callback and so
independent of the load, the statements of each kind and the commits. ``--wal`` also counts the
pages written to the WAL per event, from its growth, with the checkpoints off (so not beside the
CPU figures of a run without it).
``--base COMMIT`` runs that commit's hub the same way, interleaved. Appends to
``benchmarks/results/sender_share.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.loadgen import machine_facts, save_result
from benchmarks.publish import unpack
from benchmarks.report import figures, interleave, record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100, help="events per publish")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=0.0, help="events per second (0: flat out)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--base", help="a commit whose hub is measured beside this tree's")
    parser.add_argument("--wal", action="store_true", help="count WAL pages per event (checkpoints off)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a run, in this process
    return parser.parse_args(argv)


def kind(statement: str) -> str:
    """``INSERT INTO webhook_attempts (…`` → ``INSERT webhook_attempts``."""
    words = statement.replace("OR IGNORE ", "").split()
    if words[0] in ("INSERT", "UPDATE", "DELETE") and len(words) > 2:
        return f"{words[0]} {words[2] if words[0] != 'UPDATE' else words[1]}"
    return words[0] if words[0] != "SELECT" else "SELECT " + words[words.index("FROM") + 1]


async def one(args: argparse.Namespace) -> dict[str, Any]:
    from pushhub.backends import create_backend, sqlite
    from pushhub.events import EventDraft
    from pushhub.hub import Hub
    from pushhub.retention import RetentionPolicy
    from pushhub.webhooks import endpoints
    from pushhub.webhooks.client import Reply
    from pushhub.webhooks.dispatcher import Dispatcher
    from pushhub.webhooks.settings import DispatchConfig
    from pushhub.webhooks.ssrf import parse_networks

    owed = args.events * args.endpoints
    answered = 0
    waiting: list[tuple[int, asyncio.Future[None]]] = []  # (a count of replies, set once it is reached)

    def until(count: int) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        waiting.append((count, future))
        return future

    class Instant:
        async def post(self, url: str, body: bytes, headers: Any) -> Reply:
            nonlocal answered
            await asyncio.sleep(0)  # a reply takes at least a loop turn
            answered += 1
            for count, future in waiting:
                if answered >= count and not future.done():
                    future.set_result(None)
            return Reply(200)

        async def close(self) -> None:
            pass

    if args.wal:  # the WAL only grows: its size tells the pages written
        sqlite.CHECKPOINT_COMMITS = sqlite.CHECKPOINT_IDLE = 10**9
    with tempfile.TemporaryDirectory(prefix="pushhub-bench-") as tmp:
        wal = os.path.join(tmp, "hub.db-wal")
        backend = create_backend("sqlite://" + os.path.join(tmp, "hub.db"), RetentionPolicy())
        await backend.open()
        hub = Hub(backend.broker)
        await hub.start()
        allow = tuple(parse_networks(["127.0.0.0/8"]))
        dispatcher = Dispatcher(hub, backend.deliveries, DispatchConfig(allow=allow), client=Instant)
        await dispatcher.start()
        for _ in range(args.endpoints):
            await dispatcher.save(endpoints.create({"url": "http://127.0.0.1:9/hook", "channels": ["bench"]},
                                                   https_only=False, allow=allow, now=time.time()))
        warmed = until(args.endpoints)
        await hub.publish("bench", [EventDraft.from_json({"type": "warm.up"})])
        await asyncio.wait_for(warmed, 60)
        for _ in range(6000):  # until the warm-up's attempts are stored, not counted with the others
            if len(await backend.deliveries.attempts(limit=args.endpoints)) == args.endpoints:
                break
            await asyncio.sleep(0.01)
        done = until(args.endpoints + owed)
        database = backend.deliveries.database  # type: ignore[attr-defined]
        counts: collections.Counter[str] = collections.Counter()
        database.db.set_trace_callback(lambda statement: counts.update([kind(statement)]))
        wal_bytes = os.stat(wal).st_size
        started, cpu = time.perf_counter(), time.thread_time()
        for index, first in enumerate(range(0, args.events, args.batch)):
            if args.rate:
                await asyncio.sleep(max(0.0, started + index * args.batch / args.rate - time.perf_counter()))
            await hub.publish("bench", [EventDraft.from_json({"type": "bench.share", "data": {"n": n}})
                                        for n in range(first, min(args.events, first + args.batch))])
        await asyncio.wait_for(done, 600)
        await dispatcher.recorder.close()
        cpu, elapsed = time.thread_time() - cpu, time.perf_counter() - started
        frame = database.db.execute("PRAGMA page_size").fetchone()[0] + 24  # a page and its frame header
        wal_pages = (os.stat(wal).st_size - wal_bytes) / frame
        database.db.set_trace_callback(None)
        await dispatcher.close()
        await hub.close()
        await backend.close()
    return {"main_thread_us_per_delivery": round(cpu / owed * 1e6, 1), "deliveries_per_s": round(owed / elapsed, 1),
            "statements_per_delivery": {k: round(v / owed, 3) for k, v in counts.most_common()},
            "commits_per_delivery": round(counts["COMMIT"] / owed, 4),
            **({"wal_pages_per_event": round(wal_pages / args.events, 1)} if args.wal else {}),
            "loadavg": round(os.getloadavg()[0], 2)}


def measure(name: str, args: argparse.Namespace, base_tree: str | None) -> dict[str, Any]:
    tree = ROOT if name == "pushhub" else base_tree
    assert tree is not None
    command = [sys.executable, "-m", "benchmarks.sender_share", "--one", "--endpoints", str(args.endpoints),
               "--batch", str(args.batch), "--events", str(args.events), "--rate", str(args.rate),
               *(["--wal"] if args.wal else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(tree, "hub"), ROOT])}
    done = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return {"contender": name, **json.loads(done.stdout.splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        import uvloop
        print(json.dumps(uvloop.run(one(args))))
        return 0
    facts = machine_facts()
    contenders = ("pushhub", "base") if args.base else ("pushhub",)
    with tempfile.TemporaryDirectory(prefix="pushhub-bench-base-") as tmp:
        base_tree = unpack(args.base, tmp) if args.base else None
        runs = interleave(contenders, args.runs, lambda name: measure(name, args, base_tree))
    settings: dict[str, Any] = {"endpoints": args.endpoints, "batch": args.batch, "events": args.events,
                                "rate": args.rate, "runs": args.runs, "base": args.base, "wal": args.wal}
    summary: dict[str, Any] = {figure: figures(runs, figure) for figure in (
        "main_thread_us_per_delivery", "commits_per_delivery", *(["wal_pages_per_event"] if args.wal else []))}
    summary["statements_per_delivery"] = {name: records[-1]["statements_per_delivery"]
                                          for name, records in runs.items()}
    saved = record("sender_share", settings, summary, runs, facts)
    print(json.dumps({key: value for key, value in saved.items() if key != "records"}))
    if not args.no_save:
        save_result("sender_share", saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
