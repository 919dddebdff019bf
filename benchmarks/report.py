"""How the benchmarks that compare print and record their figures: the median and range of the
runs of each contender, and the ratio of the medians to the reference measured in the same run."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any


def interleave(contenders: Sequence[str], runs: int,
               measure: Callable[[str], dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``runs`` rounds in each of which every contender is measured once; each round starts with
    the contender after the one that started the previous round."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    for index in range(runs):
        shift = index % len(contenders)
        for name in [*contenders[shift:], *contenders[:shift]]:
            results[name].append(measure(name))
    return results


def load_range(runs: dict[str, list[dict[str, Any]]], key: str = "loadavg") -> str:
    """The lowest and highest load average seen at the start of the runs."""
    loads = [r[key] for records in runs.values() for r in records]
    return f"load average {min(loads):.2f}-{max(loads):.2f}"


def spread(values: list[float]) -> dict[str, float] | None:
    """Median, lowest and highest of ``values`` (None when there are none)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ratio(ours: dict[str, float] | None, reference: dict[str, float] | None) -> float | None:
    if ours is None or reference is None or not reference["median"]:
        return None
    return round(ours["median"] / reference["median"], 3)


def number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def cell(entry: dict[str, float] | None) -> str:
    """``median [min-max]``."""
    if entry is None:
        return "-"
    return f"{number(entry['median'])} [{number(entry['min'])}-{number(entry['max'])}]"


def table(rows: list[tuple[str, list[dict[str, float] | None], str]], columns: list[str], note: str) -> list[str]:
    """One line per figure: its label, a cell per contender, then ``note`` (the ratio)."""
    lines = [f"  {'':32}" + "".join(f"{c:>26}" for c in columns) + f"  {note}"]
    for label, cells, tail in rows:
        lines.append(f"  {label:<32}" + "".join(f"{cell(c):>26}" for c in cells) + f"  {tail}")
    return lines


def figures(runs: dict[str, list[dict[str, Any]]], key: str) -> dict[str, dict[str, float] | None]:
    """The spread of ``key`` over each contender's runs."""
    return {name: spread([r[key] for r in records if r.get(key) is not None]) for name, records in runs.items()}


def record(benchmark: str, settings: dict[str, Any], figures: dict[str, Any],
           runs: dict[str, list[dict[str, Any]]], facts: dict[str, Any]) -> dict[str, Any]:
    """What a comparison saves: its settings, its figures, every run's record and the machine's facts."""
    return {"benchmark": benchmark, **settings, **figures, "records": runs, **facts,
            "loadavg_end": os.getloadavg()[0]}


def heading(title: str, saved: dict[str, Any]) -> str:
    """``title``, then how many runs, under what load, on how many cores."""
    return (f"{title}; median [range] of {saved['runs']} interleaved run(s), {load_range(saved['records'])} "
            f"on {saved['nproc']} cores")
