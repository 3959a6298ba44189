"""CI soak: random composed fault schedules from a fixed seed, judged by the checker.

`python -m chaos soak --minutes 3 --seed SEED` through the same code path as the
CLI: every schedule drawn must hold (no overlap, no double VIP, no lost mail,
epochs owned and rising, the client recovers, one active after the heal).
SEED is fixed so CI replays the same schedules; the run folder and each
schedule are named in the failure message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.faults.soak import BY_NAME, draw
from tests.chaos.conftest import lab_namespaces

REPO = Path(__file__).resolve().parents[3]
SEED = 11
MINUTES = 3.0


def test_schedules_are_reproducible_from_the_seed_and_compose_faults() -> None:
    assert draw(SEED, 0) == draw(SEED, 0)
    assert draw(SEED, 0) != draw(SEED + 1, 0)
    schedules = [draw(SEED, k) for k in range(50)]
    assert any(len(s) > 1 for s in schedules)
    overlapping = [
        s for s in schedules for a, b in zip(s, s[1:], strict=False) if b.start < a.start + a.hold
    ]
    assert overlapping, "no two faults ever overlap"
    assert len({st.kind for s in schedules for st in s}) >= 15


def test_every_fault_kind_is_drawn() -> None:
    # The whole set, including the faults added after the soak (a true power-off, the
    # hanging power switch, the read-only state dir, the full store, isolation).
    drawn = {st.kind for k in range(400) for st in draw(SEED, k)}
    assert drawn == set(BY_NAME)
    assert {"true-power-off", "power-switch-hangs", "state-dir-ro", "store-full"} <= drawn


def test_soak_usage_errors_exit_2() -> None:
    for argv in (["soak"], ["soak", "--minutes", "0"], ["soak", "--minutes", "x"]):
        p = subprocess.run(
            [sys.executable, "-m", "chaos", *argv], cwd=REPO, capture_output=True, text=True
        )
        assert p.returncode == 2, (argv, p.stderr)
        assert "Traceback" not in p.stderr


@pytest.mark.timeout(600)
def test_a_three_minute_soak_with_a_fixed_seed_holds(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "chaos", "soak", "--minutes", str(MINUTES), "--seed", str(SEED)]
        + ["--out", str(REPO / "chaos-runs")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=590,
    )
    print(p.stdout[-6000:])
    folder = next(
        (Path(line.split()[2]) for line in p.stdout.splitlines() if line.startswith("chaos soak")),
        None,
    )
    assert folder is not None, p.stdout + p.stderr
    summary = json.loads((folder / "soak.json").read_text())
    assert summary["seed"] == SEED and len(summary["runs"]) >= 2
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    for r in summary["runs"]:
        prefix = json.loads((folder / r["folder"] / "lab.json").read_text())["prefix"]
        assert lab_namespaces(prefix + "-") == [], f"{r['folder']} left lab namespaces behind"
