"""`python -m chaos table FOLDER...`: the results table of many runs, generated
(chaos/README.md, "Results: every scenario, twenty runs each"; docs/benchmarks.md).

Every results.json under the given folders (run folders, or folders of run
folders) is one repetition; repetitions of the same scenario are combined, whatever
run (and commit) they came from:

| # | scenario | runs | passed | violations | outage median | outage p95 | commits |

A repetition's outage is its longest client outage (the checker's per-fault
`outage`); a fault the client never recovered from counts as a violation, not as
a number. Aggregation (`aggregate`, `render`) is pure: tests feed it fixtures.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    number: int
    name: str
    runs: int = 0
    passed: int = 0
    violations: int = 0
    outages: list[float] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)  # in first-seen order

    @property
    def median(self) -> float | None:
        return statistics.median(self.outages) if self.outages else None

    @property
    def p95(self) -> float | None:
        return percentile(self.outages, 95)


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile: a value that was measured, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def run_outage(results: dict[str, Any]) -> float | None:
    """The repetition's longest recovered outage (None: no fault the client noticed)."""
    outs = [o.get("outage") for o in results.get("outages") or []]
    known = [float(x) for x in outs if isinstance(x, (int, float))]
    return max(known) if known else None


def aggregate(results: Iterable[dict[str, Any]]) -> list[Row]:
    """One row per scenario number, sorted by number."""
    rows: dict[int, Row] = {}
    for r in results:
        number = int(r["number"])
        row = rows.setdefault(number, Row(number, str(r["scenario"])))
        row.runs += 1
        row.passed += bool(r.get("passed"))
        row.violations += len(r.get("violations") or [])
        if (outage := run_outage(r)) is not None:
            row.outages.append(outage)
        commit = r.get("commit") or "unknown"
        if commit not in row.commits:
            row.commits.append(commit)
    return [rows[n] for n in sorted(rows)]


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


def render(rows: list[Row]) -> str:
    lines = [
        "| # | scenario | runs | passed | violations | outage median | outage p95 | commits |",
        "|--:|---|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        commits = ", ".join(c[:12] + ("+dirty" if c.endswith("+dirty") else "") for c in r.commits)
        lines.append(
            f"| {r.number} | {r.name} | {r.runs} | {r.passed} | {r.violations} "
            f"| {_secs(r.median)} | {_secs(r.p95)} | {commits} |"
        )
    total = sum(r.runs for r in rows)
    bad = sum(r.violations for r in rows)
    lines.append("")
    lines.append(f"{total} runs of {len(rows)} scenarios, {bad} violations.")
    return "\n".join(lines)


def load(folders: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every results.json under `folders`; problems name the file (nothing is skipped silently)."""
    found: list[dict[str, Any]] = []
    problems: list[str] = []
    for folder in folders:
        if not folder.is_dir():
            problems.append(f"{folder}: not a folder")
            continue
        files = sorted(folder.rglob("results.json"))
        if not files:
            problems.append(f"{folder}: no results.json under it")
        for f in files:
            try:
                r = json.loads(f.read_text())
                int(r["number"]), str(r["scenario"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                problems.append(f"{f}: not a scenario result ({type(e).__name__}: {e})")
                continue
            found.append(r)
    return found, problems


def main(folders: list[Path]) -> int:
    results, problems = load(folders)
    for p in problems:
        print(f"chaos table: {p}", file=sys.stderr)
    if problems:
        return 2
    print(render(aggregate(results)))
    return 0
