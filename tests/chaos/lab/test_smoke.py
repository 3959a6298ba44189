"""CI smoke of the chaos lab: scenarios 1, 2, 4, 5 and 14 against the real daemon,
1, 4 and 8 again with the real mail node (`--mail postfix`), and the negative controls.

Each scenario runs once in a fresh lab through the same runner as
`python -m chaos run`, and the checker's verdict must be "passed". Artifacts
land in ./chaos-runs/<timestamp>-<scenario>/ (named in the failure message).
About 30-45 s per scenario on two cores; the full suite is `python -m chaos run --all`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from chaos.faults.catalog import MAIL_SMOKE, SMOKE, find
from chaos.faults.controls import run_controls
from chaos.lab.store_image import attached, image_path
from chaos.repetition import describe
from chaos.runner import run_scenarios
from tests.chaos.conftest import lab_namespaces

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("number", SMOKE, ids=[find(str(n)).name for n in SMOKE])
def test_smoke_scenario_passes_the_checker(number: int) -> None:
    scenario = find(str(number))
    folder, [outcome] = run_scenarios([scenario], REPO / "chaos-runs", seed=number, log=print)
    prefix = json.loads((outcome.run_dir / "lab.json").read_text())["prefix"]
    assert lab_namespaces(prefix + "-") == [], "the run left lab namespaces behind"
    assert outcome.passed, f"{describe(outcome)}\nartifacts: {folder}"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("number", MAIL_SMOKE, ids=[find(str(n)).name for n in MAIL_SMOKE])
def test_mail_smoke_scenario_delivers_every_acknowledged_message(number: int) -> None:
    """With Debian's Postfix and Dovecot on the loop-device store (`--mail postfix`)."""
    scenario = replace(find(str(number)), mail="postfix")
    folder, [outcome] = run_scenarios(
        [scenario], REPO / "chaos-runs", seed=number, label=f"mail-{scenario.name}", log=print
    )
    prefix = json.loads((outcome.run_dir / "lab.json").read_text())["prefix"]
    assert lab_namespaces(prefix + "-") == [], "the run left lab namespaces behind"
    assert attached(image_path(outcome.run_dir)) == [], "the run left loop devices attached"
    r = outcome.results
    assert outcome.passed, f"{describe(outcome)}\nartifacts: {folder}"
    assert r["acked"] > 0 and r["lost"] == 0 and r["fsck_ok"], describe(outcome)


@pytest.mark.timeout(300)
def test_negative_controls_are_all_flagged() -> None:
    """`python -m chaos controls`: planted lost mail, a lying fencer and a service that
    acks (250) what the full store refused must be caught."""
    folder, rows = run_controls(REPO / "chaos-runs", log=print)
    assert [r["control"] for r in rows] == ["local-queue", "lying-fencer", "store-full-acks"]
    for r in rows:
        assert r["flagged"], f"control {r['control']} was not flagged: {r}\nartifacts: {folder}"
        prefix = json.loads((Path(r["folder"]) / "lab.json").read_text())["prefix"]
        assert lab_namespaces(prefix + "-") == [], "the control left lab namespaces behind"
        assert attached(image_path(Path(r["folder"]))) == [], "loop devices left attached"
