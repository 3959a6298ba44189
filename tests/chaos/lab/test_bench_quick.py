"""CI run of the benchmark's quick mode (`python -m chaos.bench --quick`).

It checks that the benchmark works end to end — every case produced a row, the
footprint and scale parts ran, nothing was left behind — one safety
property: no failoverd case ever had two nodes serving at once, and one
negative control: keepalived's split-brain rows must show the overlap. Timings are
the benchmark's output, never asserted here (the targets are shown by the
benchmark itself). About three minutes on two cores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.bench.suite import ALL, LAB_CASES
from tests.chaos.conftest import lab_namespaces

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.timeout(600)
def test_quick_bench_covers_every_case_without_split_brain(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    cases = list(ALL)
    # The keepalived rows are a negative control (below), so they must run, not skip.
    assert shutil.which("keepalived"), "keepalived missing: run deploy/install-deps.sh"
    before = set(lab_namespaces())
    p = subprocess.run(
        [sys.executable, "-m", "chaos.bench", "--quick", "--out", str(out)]
        + ["--only", ",".join(cases)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=570,
    )
    assert set(lab_namespaces()) <= before, "the bench left lab namespaces behind"
    report = f"exit {p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}"
    data = json.loads((out / "bench.json").read_text())
    assert not data["errors"], report

    rows = {c["key"]: c for c in data["cases"]}
    expected = [c.key for c in LAB_CASES if c.key in cases]
    assert sorted(rows) == sorted(expected), report
    for key in expected:
        assert rows[key]["error"] is None, report
        assert rows[key]["reps"], f"{key}: no repetition ran\n{report}"
        assert (REPO / rows[key]["timeline"]).exists(), report
    # The safety property: failoverd never let two nodes serve, nor lost acknowledged mail.
    for key, row in rows.items():
        if row["system"] == "failoverd":
            assert row["overlaps"] == 0, f"{key}: split brain\n{report}"
            assert row["lost"] == 0, f"{key}: acknowledged mail lost\n{report}"
    # Negative control: the checker must see keepalived's split brain. Without a quorum
    # both nodes serve when keepalived dies under a running service or the peer link
    # breaks (ka-crash takes the service down with it, so it cannot overlap).
    for key in ("ka-kill-daemon", "ka-cut-peer-link"):
        assert rows[key]["overlaps"] > 0, f"{key}: keepalived's split brain not flagged\n{report}"
    assert data["footprint"]["active"]["rss_mb"] > 0, report
    assert data["scale"]["kill_all_actives"]["killed"] == data["scale"]["clusters"], report

    assert p.returncode == 0, report
    assert "| case | system | n | outage median (s)" in p.stdout
    assert (out / "bench.png").exists() and (out / "bench.md").exists()
