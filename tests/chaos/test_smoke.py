"""CI smoke of the chaos lab: scenarios 1, 2, 4, 5 and 14 against the real daemon.

Each scenario runs once in a fresh lab through the same runner as
`python -m chaos run`, and the checker's verdict must be "passed". Artifacts
land in ./chaos-runs/<timestamp>-<scenario>/ (named in the failure message).
About 30-45 s per scenario on two cores; the full suite is `python -m chaos run --all`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.runner import describe, run_scenarios
from chaos.scenarios import SMOKE, find
from tests.chaos.conftest import lab_namespaces

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("number", SMOKE, ids=[find(str(n)).name for n in SMOKE])
def test_smoke_scenario_passes_the_checker(number: int) -> None:
    scenario = find(str(number))
    folder, [outcome] = run_scenarios([scenario], REPO / "chaos-runs", seed=number, log=print)
    prefix = json.loads((outcome.run_dir / "lab.json").read_text())["prefix"]
    assert lab_namespaces(prefix + "-") == [], "the run left lab namespaces behind"
    assert outcome.passed, f"{describe(outcome)}\nartifacts: {folder}"
