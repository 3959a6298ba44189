"""`python -m chaos run --jobs K`: concurrent labs do not interfere, and `chaos cleanup`
from anyone leaves a live lab alone (chaos/parallel.py, chaos/lab/registry.py,
chaos/lab/leftovers.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.lab import cgroups, netns, registry
from chaos.lab.leftovers import cleanup
from chaos.lab.network import Lab
from chaos.layout import REGISTRY
from tests.chaos.conftest import lab_namespaces

REPO = Path(__file__).resolve().parents[3]


def _labs_under(root: Path) -> list[dict[str, object]]:
    """Registry entries of labs whose run folder is under `root` (ours, not other runs')."""
    found = []
    for reg in REGISTRY.glob("fo*.json"):
        try:
            info = json.loads(reg.read_text())
        except (OSError, ValueError):
            continue
        if str(info.get("run_dir", "")).startswith(str(root)):
            found.append(info)
    return found


def _span(run_dir: Path) -> tuple[float, float]:
    ts = [json.loads(x)["t"] for x in (run_dir / "events" / "lab.jsonl").read_text().splitlines()]
    return min(ts), max(ts)


@pytest.mark.timeout(240)
def test_two_labs_run_at_once_without_interfering_and_cleanup_spares_them(
    tmp_path: Path,
) -> None:
    out = tmp_path / "runs"
    run = subprocess.Popen(
        [sys.executable, "-m", "chaos", "run", "1", "2", "--jobs", "2", "--seed", "7"]
        + ["--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Both labs built: registered, every namespace present.
        deadline = time.monotonic() + 60
        while True:
            labs = _labs_under(tmp_path)
            if len(labs) == 2 and all(
                netns.exists(str(n))
                for info in labs
                for n in info["namespaces"]  # type: ignore[attr-defined]
            ):
                break
            assert run.poll() is None, run.communicate()[0]
            assert time.monotonic() < deadline, "two labs were never up at once"
            time.sleep(0.1)
        prefixes = {str(info["prefix"]) for info in labs}
        assert len(prefixes) == 2
        names = [str(n) for info in labs for n in info["namespaces"]]  # type: ignore[attr-defined]
        assert len(set(names)) == 14

        # Another developer's `chaos cleanup` while both runs are live: nothing of ours goes.
        c = subprocess.run(
            [sys.executable, "-m", "chaos", "cleanup"], cwd=REPO, capture_output=True, text=True
        )
        assert c.returncode == 0, c.stderr
        gone = c.stdout.split()
        assert not [n for n in gone if n.rsplit("-", 1)[0] in prefixes], c.stdout
        assert all(netns.exists(n) for n in names)

        text, _ = run.communicate(timeout=200)
    finally:
        if run.poll() is None:
            run.terminate()
            run.wait(120)
    assert run.returncode == 0, text
    [folder] = list(out.iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert [(r["number"], r["passed"]) for r in summary["runs"]] == [(1, True), (2, True)], text

    # They really overlapped, each in its own lab, and both are gone without a trace.
    (a0, a1), (b0, b1) = (_span(folder / r["folder"]) for r in summary["runs"])
    assert a0 < b1 and b0 < a1, "the two labs did not run at the same time"
    for r in summary["runs"]:
        lab = json.loads((folder / r["folder"] / "lab.json").read_text())
        assert lab["prefix"] in prefixes
        assert lab_namespaces(lab["prefix"] + "-") == []
        assert not (REGISTRY / f"{lab['prefix']}.json").exists()
        for controller in ("freezer", "cpu"):
            base = cgroups.ROOT / controller / cgroups.BASE
            assert not list(base.glob(f"{lab['prefix']}-*")) if base.exists() else True
    results = json.loads((folder / summary["runs"][0]["folder"] / "results.json").read_text())
    assert results["commit"] and results["timings"]["cpu_lab"] > 0


@pytest.fixture
def owner() -> Iterator[subprocess.Popen[bytes]]:
    """A live process standing for a concurrent run's worker."""
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def test_cleanup_keeps_a_lab_registered_while_it_lists_namespaces(
    tmp_path: Path, owner: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of two concurrent runs: run B registers and builds its lab while run A's
    cleanup is between reading the registry and listing the namespaces. Reading the
    registry first took B's fresh namespace for a stray and deleted it."""
    prefix = f"fo{owner.pid % 10000}z"
    ns = f"{prefix}-br"
    real_listed = netns.listed

    def listed_while_b_starts() -> list[str]:
        if not netns.exists(ns):  # run B: register (before anything exists), then build
            info = {
                "prefix": prefix,
                "run_dir": str(tmp_path),
                "runner_pid": owner.pid,
                "runner_start": registry.process_start(owner.pid),
                "namespaces": [ns],
            }
            (REGISTRY / f"{prefix}.json").write_text(json.dumps(info))
            netns.add(ns)
        return real_listed()

    monkeypatch.setattr(netns, "listed", listed_while_b_starts)
    try:
        removed = cleanup()
        assert ns not in removed and netns.exists(ns), "cleanup deleted a live lab"
    finally:
        netns.delete(ns)
        (REGISTRY / f"{prefix}.json").unlink(missing_ok=True)


def test_a_prefix_is_claimed_by_one_lab_only(tmp_path: Path) -> None:
    prefix = f"fo{os.getpid() % 10000}y"
    a, b = Lab(tmp_path / "a", prefix), Lab(tmp_path / "b", prefix)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        registry.claim(prefix, a.run_dir, a.namespaces)
        b_claimed = registry.claim(prefix, b.run_dir, b.namespaces)
        entry = json.loads((REGISTRY / f"{prefix}.json").read_text())
        assert entry["run_dir"] == str(tmp_path / "a"), "b took a's prefix over"
        assert b_claimed is False
    finally:
        (REGISTRY / f"{prefix}.json").unlink(missing_ok=True)
