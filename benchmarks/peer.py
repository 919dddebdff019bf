"""pushhub beside nginx+Nchan, measured in the same run: fan-out, connect and flat-out publish
against both servers, interleaved, each pair printed with its ratio.

    python -m benchmarks.peer                      # every scenario, 3 runs each
    python -m benchmarks.peer --runs 5 --only fanout-sse-1000x100 --only publish
    python -m benchmarks.peer --quick --runs 1     # tiny sizes, to see that it works
    python -m benchmarks.peer --only per-user-sse-2000 --base 33e06c9   # and the hub of that commit

Nchan runs from Debian's ``nginx`` and ``libnginx-mod-nchan`` packages with the configuration in
``benchmarks/nchan.conf`` (see :mod:`benchmarks.nchan`; this script installs nothing). Both servers
get the same load from the same generator (:mod:`benchmarks.loadgen`): every event carries its
publish time and a sequence number, so latency, loss and duplicates are counted the same way on
both sides. Each run starts a fresh server of one process each (``--nginx-workers`` gives nginx
more); within a run the two servers take turns, and which goes first alternates from run to run.
Prints the median and range of each figure for both servers and the ratio of the medians
(pushhub / Nchan; with ``--base COMMIT`` also that commit's hub, unpacked with ``git archive``, as a
third contender, and pushhub / base), and appends one JSON line per scenario, with every run's record and the
machine's facts, to ``benchmarks/results/peer.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks import connect, fanout
from benchmarks.loadgen import Hub, ServerProcess, machine_facts, save_result
from benchmarks.nchan import Nchan, missing
from benchmarks.publish import unpack
from benchmarks.report import figures, interleave, load_range, ratio, record, table


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    better: str  # "higher" or "lower"


FANOUT_FIGURES = (
    Figure("delivered_per_s", "delivered/s", "higher"),
    Figure("p50_ms", "p50 latency ms", "lower"),
    Figure("p99_ms", "p99 latency ms", "lower"),
    Figure("hub_us_per_delivery", "server CPU us/delivery", "lower"),
    Figure("kib_per_idle_conn", "server KiB/connection", "lower"),
    Figure("generator_us_per_delivery", "generator CPU us/delivery", "lower"),
    Figure("machine_us_per_delivery", "machine CPU us/delivery", "lower"),
)
CONNECT_FIGURES = (
    Figure("seconds", "seconds to connect all", "lower"),
    Figure("p99_ms", "p99 connect ms", "lower"),
    Figure("hub_us_per_connect", "server CPU us/connect", "lower"),
    Figure("generator_us_per_connect", "generator CPU us/connect", "lower"),
    Figure("kib_per_idle_conn", "server KiB/connection", "lower"),
)
PUBLISH_FIGURES = (
    Figure("publish_rate", "publishes/s", "higher"),
    Figure("hub_us_per_publish", "server CPU us/publish", "lower"),
    Figure("publisher_us_per_request", "generator CPU us/request", "lower"),
)


@dataclass(frozen=True)
class Scenario:
    name: str
    module: Any  # fanout or connect: parse_args(argv) and run(args, server)
    argv: Callable[[argparse.Namespace], list[str]]
    figures: tuple[Figure, ...]
    storage: str | None = None  # pushhub's log for this scenario (else --storage)


def fanout_argv(transport: str, subscribers: int, rate: int) -> Callable[[argparse.Namespace], list[str]]:
    def argv(args: argparse.Namespace) -> list[str]:
        count = max(1, subscribers // 20) if args.quick else subscribers
        return ["--transport", transport, "--subscribers", str(count), "--rate", str(rate),
                "--duration", str(args.duration), "--procs", str(args.procs), "--patience", str(args.patience)]
    return argv


def connect_argv(transport: str, connections: int) -> Callable[[argparse.Namespace], list[str]]:
    def argv(args: argparse.Namespace) -> list[str]:
        count = max(1, connections // 20) if args.quick else connections
        return ["--transport", transport, "--connections", str(count), "--procs", str(args.procs)]
    return argv


def per_user_argv(args: argparse.Namespace) -> list[str]:
    """2000 channels with one SSE subscriber each, 2000 single-event publishes/s spread over them."""
    channels = 100 if args.quick else 2000
    return ["--transport", "sse", "--subscribers", str(channels), "--channels", str(channels), "--rate", "2000",
            "--publishers", "32", "--duration", str(args.duration), "--procs", str(args.procs),
            "--patience", str(args.patience)]


def publish_argv(args: argparse.Namespace) -> list[str]:
    """Flat out into one channel that one SSE subscriber follows (so that what is lost is counted)."""
    return ["--subscribers", "1", "--flat-out", "--publishers", str(args.in_flight), "--duration", str(args.duration)]


SCENARIOS = (
    Scenario("fanout-sse-1000x100", fanout, fanout_argv("sse", 1000, 100), FANOUT_FIGURES),
    Scenario("fanout-ws-1000x100", fanout, fanout_argv("ws", 1000, 100), FANOUT_FIGURES),
    Scenario("fanout-sse-5000x10", fanout, fanout_argv("sse", 5000, 10), FANOUT_FIGURES),
    Scenario("fanout-ws-5000x10", fanout, fanout_argv("ws", 5000, 10), FANOUT_FIGURES),
    Scenario("connect-sse-5000", connect, connect_argv("sse", 5000), CONNECT_FIGURES),
    Scenario("connect-ws-5000", connect, connect_argv("ws", 5000), CONNECT_FIGURES),
    Scenario("publish", fanout, publish_argv, PUBLISH_FIGURES),
    Scenario("per-user-sse-2000", fanout, per_user_argv, FANOUT_FIGURES, storage="sqlite"),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
SERVERS = ("pushhub", "nchan")
BASE = "base"  # the hub of --base COMMIT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per scenario and server")
    parser.add_argument("--only", action="append", choices=sorted(BY_NAME), help="scenarios to run (all by default)")
    parser.add_argument("--quick", action="store_true", help="a twentieth of the subscribers and connections")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of publishing per run")
    parser.add_argument("--patience", type=float, default=10.0, help="seconds to wait for stragglers")
    parser.add_argument("--in-flight", type=int, default=32, help="publish requests in flight (publish scenario)")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes for the subscribers")
    parser.add_argument("--nginx-workers", type=int, default=1,
                        help="nginx worker processes (1, like the one hub process: its --workers needs Redis)")
    parser.add_argument("--storage", choices=("memory", "sqlite"), default="memory", help="pushhub's log")
    parser.add_argument("--hub-arg", action="append", default=[], help="extra argument for 'pushhub serve'")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness for both servers and the generator, e.g. -10 on a shared machine (needs root)")
    parser.add_argument("--base", default=None, help="a commit whose hub to measure too (the reference for this tree)")
    parser.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def make_server(name: str, args: argparse.Namespace, storage: str) -> ServerProcess:
    if name == "nchan":
        return Nchan(workers=args.nginx_workers)
    return Hub(storage=storage, extra_args=args.hub_arg, tree=args.base_tree if name == BASE else None)


def measure(scenario: Scenario, server: str, args: argparse.Namespace) -> dict[str, Any]:
    options = scenario.module.parse_args([*scenario.argv(args), "--nice", str(args.nice), "--no-save"])
    result: dict[str, Any] = scenario.module.run(options, make_server(server, args, scenario.storage or args.storage))
    if scenario.name == "publish":
        cpu = (result["hub_cpu_user_s"] or 0.0) + (result["hub_cpu_sys_s"] or 0.0)
        result["hub_us_per_publish"] = round(cpu / result["published"] * 1e6, 2) if result["published"] else None
    return result


def summarize(scenario: Scenario, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Median and range of each figure per server, the ratio of the medians, and what was lost."""
    summary: dict[str, dict[str, Any]] = {}
    for figure in scenario.figures:
        spreads = figures(runs, figure.key)
        summary[figure.key] = {"better": figure.better, **spreads,
                               "ratio": ratio(spreads["pushhub"], spreads["nchan"])}
        if BASE in runs:
            summary[figure.key]["base_ratio"] = ratio(spreads["pushhub"], spreads[BASE])
    losses = {server: {key: sum(r.get(key) or 0 for r in records)
                       for key in ("lost", "duplicated", "publish_errors", "failed", "connect_failed")}
              for server, records in runs.items()}
    return {"figures": summary, "losses": losses}


def report(scenario: Scenario, summary: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    servers = list(runs)
    for figure in scenario.figures:
        entry = summary["figures"][figure.key]
        shown = " ".join("-" if entry.get(key) is None else f"{entry[key]:.2f}"
                         for key in ("ratio", "base_ratio") if key in entry)
        rows.append((figure.label, [entry[server] for server in servers], f"{shown:>5} ({figure.better} is better)"))
    lines = [f"{scenario.name}: median [range] of {len(runs['pushhub'])} interleaved run(s), "
             f"{load_range(runs, 'loadavg_start')}",
             *table(rows, servers, "pushhub/nchan" + (f" pushhub/{BASE}" if BASE in runs else ""))]
    for server in servers:
        counts = summary["losses"][server]
        lines.append(f"  {server}: lost {counts['lost']}, duplicated {counts['duplicated']}, "
                     f"publish errors {counts['publish_errors']}, "
                     f"failed connections {counts['failed'] + counts['connect_failed']}")
    return "\n".join(lines)


def run_scenario(scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    facts = machine_facts()
    runs = interleave((*SERVERS, BASE) if args.base else SERVERS, args.runs,
                      lambda server: measure(scenario, server, args))
    summary = summarize(scenario, runs)
    print(report(scenario, summary, runs), flush=True)
    settings = {"scenario": scenario.name, "runs": args.runs, "quick": args.quick, "duration": args.duration,
                "nginx_workers": args.nginx_workers, "nice": args.nice, "storage": scenario.storage or args.storage,
                "base": args.base}
    return record("peer", settings, summary, runs, facts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = missing()
    if reason:
        print(f"peer: cannot run the reference: {reason}", file=sys.stderr)
        return 2
    failed = False
    with tempfile.TemporaryDirectory(prefix="pushhub-peer-base-") as base_tree:
        args.base_tree = unpack(args.base, base_tree) if args.base else None
        for name in args.only or [s.name for s in SCENARIOS]:
            saved = run_scenario(BY_NAME[name], args)
            if not args.no_save:
                save_result("peer", saved)
            else:
                print(json.dumps({k: v for k, v in saved.items() if k != "records"}))
            losses = saved["losses"]["pushhub"]
            failed = failed or bool(losses["lost"] or losses["duplicated"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
