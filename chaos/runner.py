"""Run scenarios (`python -m chaos run`): each repetition in a fresh lab, one after the
other or up to `--jobs K` at once, and the run folder's summary.

<out>/<timestamp>-<label>/            the run folder the report names
    summary.json                      one line per scenario repetition
    NN-<name>[-rK]/                   everything of one repetition (chaos/repetition.py)
"""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.faults.scenario import Scenario
from chaos.lab.leftovers import cleanup
from chaos.parallel import run_parallel
from chaos.repetition import Outcome, describe, run_one


def run_scenarios(
    scenarios: list[Scenario],
    out: Path = Path("chaos-runs"),
    repeat: int = 1,
    seed: int | None = None,
    label: str | None = None,
    log: Any = print,
    jobs: int = 1,
) -> tuple[Path, list[Outcome]]:
    """Run each scenario `repeat` times; return the run folder and every outcome.

    jobs > 1: up to `jobs` labs at once, each repetition in its own process and lab
    (chaos/parallel.py); exclusive scenarios still run alone.
    """
    removed = cleanup()  # leftovers of crashed runs (never a live run's lab)
    if removed:
        log(f"removed leftover lab namespaces: {' '.join(removed)}")
    seed = seed if seed is not None else random.randrange(1_000_000)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if label is None:
        label = scenarios[0].name if len(scenarios) == 1 else f"{len(scenarios)}-scenarios"
    folder = (out / f"{stamp}-{label}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    log(f"chaos run {folder} (seed {seed})")
    outcomes: list[Outcome] = []
    plan = [
        (s, folder / (f"{s.number:02d}-{s.name}" + (f"-r{k + 1}" if repeat > 1 else "")), seed + k)
        for s in scenarios
        for k in range(repeat)
    ]
    if jobs > 1:
        outcomes = run_parallel(plan, jobs, lambda os_: _summary(folder, seed, os_), log)
    for s, run_dir, run_seed in plan if jobs <= 1 else []:
        log(f"- {run_dir.name} ...")
        o = run_one(s, run_dir, run_seed, log)
        outcomes.append(o)
        log(describe(o))
        _summary(folder, seed, outcomes)
    passed = sum(o.passed for o in outcomes)
    log(f"{passed}/{len(outcomes)} passed; results in {folder}")
    return folder, outcomes


def _summary(folder: Path, seed: int, outcomes: list[Outcome]) -> None:
    rows = [
        {
            "scenario": o.scenario.name,
            "number": o.scenario.number,
            "passed": o.passed,
            "folder": o.run_dir.name,
            "takeovers": o.results["takeovers"],
            "outages": [x.get("outage") for x in o.results["outages"]],
            "violations": [v["rule"] for v in o.results["violations"]],
            "timings": o.results["timings"],
        }
        for o in outcomes
    ]
    summary = {"seed": seed, "passed": all(o.passed for o in outcomes), "runs": rows}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
