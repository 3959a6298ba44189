"""The lab's faults themselves, without failoverd: they do what they say."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.lab import cgroups, netns
from chaos.lab.network import Lab
from tests.chaos.conftest import lab_namespaces

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab.create(tmp_path / "run")
    (lab.run_dir / "flags").mkdir()
    yield lab
    lab.teardown()
    assert not lab_namespaces(lab.prefix + "-")
    assert not list((cgroups.ROOT / "freezer" / cgroups.BASE).glob(f"{lab.prefix}-*"))


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def power_switch(lab: Lab, caller: str, target: str, timeout: float):
    """The lab's power switch as failoverd runs it: from the fencer's namespace."""
    argv = [sys.executable, "-m", "chaos", "power-off", "--lab", str(lab.run_dir), target]
    return subprocess.run(
        netns.exec_argv(lab.ns(caller), argv),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "FAILOVERD_NODE": caller},
    )


def test_the_power_switch_kills_a_frozen_node(lab: Lab) -> None:
    procs = [subprocess.Popen(netns.exec_argv(lab.ns("mail1"), ["sleep", "60"])) for _ in range(2)]
    deadline = time.monotonic() + 5
    while len(netns.pids(lab.ns("mail1"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    cgroups.freeze(f"{lab.prefix}-mail1", netns.pids(lab.ns("mail1")))
    assert all(state(p.pid) == "D" for p in procs)  # frozen (v1 freezer shows D)
    p = power_switch(lab, "mail2", "mail1", timeout=30)
    assert p.returncode == 0, p.stderr
    assert all(proc.wait(timeout=5) == -signal.SIGKILL for proc in procs)


def test_a_hanging_power_switch_does_not_answer(lab: Lab) -> None:
    (lab.run_dir / "flags" / "power-hang").touch()
    with pytest.raises(subprocess.TimeoutExpired):
        power_switch(lab, "mail2", "mail1", timeout=3)
    assert not lab.is_powered_off("mail1")
