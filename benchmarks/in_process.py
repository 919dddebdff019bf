"""The harness of the in-process benchmarks (:mod:`benchmarks.connect_python`,
:mod:`benchmarks.publish_python`): a stand-in for a socket's transport, and runs that take turns
between this checkout's hub and a base commit's, each in a fresh process."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from benchmarks.loadgen import ROOT, machine_facts, save_result
from benchmarks.publish import unpack


class StandInTransport:
    """What the hub asks of a stream's transport, recording the writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False


def add_turn_arguments(parser: argparse.ArgumentParser, measured: tuple[str, str]) -> None:
    """``--runs``, ``--base``, ``--no-save``, and the hidden ``--measure`` (its two values named by
    ``measured``) that :func:`take_turns` runs each process with."""
    parser.add_argument("--measure", nargs=2, metavar=measured, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--base", default=None, help="a commit whose hub takes turns with this one's")
    parser.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")


def take_turns(benchmark: str, args: argparse.Namespace, what: dict[str, Any], measure: list[str], figure: str,
               summary: str) -> list[dict[str, Any]]:
    """``args.runs`` runs of ``python -m benchmarks.{benchmark} --measure {measure}``, each a fresh
    process (of this checkout's hub, taking turns with commit ``args.base``'s if given) that prints
    its record last; each record (``what`` in it) is printed and, unless ``args.no_save``, appended
    to ``benchmarks/results/{benchmark}.jsonl``, then each tree's median and range of ``figure`` is
    printed through ``summary`` (its ``%s`` the figures, its ``%d`` the number of runs)."""
    facts = machine_facts()
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pushhub-base-") as base_dir:
        trees: dict[str, str | None] = {"this": None}
        if args.base:
            trees = {f"base {args.base}": unpack(args.base, base_dir), **trees}
        for _ in range(args.runs):
            for name, tree in trees.items():
                env = dict(os.environ)
                if tree is not None:
                    env["PYTHONPATH"] = os.path.join(tree, "hub")
                out = subprocess.run([sys.executable, "-m", f"benchmarks.{benchmark}", "--measure", *measure],
                                     cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
                record = {"benchmark": benchmark, "tree": name, **what, **json.loads(out.strip().splitlines()[-1]),
                          **facts, "loadavg_end": os.getloadavg()[0]}
                records.append(record)
                print(json.dumps(record))
                if not args.no_save:
                    save_result(benchmark, record)
    for name in trees:
        mine = [r[figure] for r in records if r["tree"] == name]
        print(f"{name:>12} " + summary % (f"{statistics.median(mine):.1f} [{min(mine):.1f}-{max(mine):.1f}]",
                                           len(mine)))
    print(f"load average {facts['loadavg_start']:.2f} -> {os.getloadavg()[0]:.2f}")
    return records


Measure = Callable[[str, int], Coroutine[Any, Any, dict[str, Any]]]
"""A benchmark's measurement in its own process, given ``--measure``'s two values."""


def measure_if_asked(args: argparse.Namespace, measure: Measure) -> bool:
    """In a process that :func:`take_turns` started: run ``measure`` on ``--measure``'s values and
    print its record (what ``take_turns`` reads). False in any other process."""
    if not args.measure:
        return False
    logging.disable(logging.CRITICAL)  # the stand-in transports are left open at the end
    print(json.dumps(uvloop.run(measure(args.measure[0], int(args.measure[1])))))
    return True
