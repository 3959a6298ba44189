"""Checks and probes run below the daemon's CPU priority; takeover steps do not.

They share the daemon's cgroup: under a CPU quota a check's start-up burst took
the slices the lease renewal needed and the active's lease ran out with nothing
wrong (chaos scenario 29). Each command below prints its own niceness (field 19
of /proc/<pid>/stat), read by the process the daemon started, not a later child.
"""

from __future__ import annotations

import os

from failoverd.config import CommandFencerConfig
from failoverd.fencing.base import FenceTarget
from failoverd.fencing.probes import probe
from failoverd.health import CommandCheck
from failoverd.process import BACKGROUND_NICE, run_command

OWN_NICE = ["sh", "-c", "cut -d' ' -f19 /proc/$$/stat"]


def base() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def test_a_health_check_runs_below_the_daemons_priority() -> None:
    assert CommandCheck(OWN_NICE, timeout=5).probe() == str(min(base() + BACKGROUND_NICE, 19))


def test_a_power_fencers_readiness_check_runs_below_the_daemons_priority() -> None:
    cfg = CommandFencerConfig(argv=("true",), check_argv=tuple(OWN_NICE))
    result = probe(cfg, FenceTarget("mail1", "192.0.2.1"), {})
    assert result.ok, result.reason
    assert result.reason.endswith(f": {min(base() + BACKGROUND_NICE, 19)}"), result.reason


def test_resource_and_fence_commands_keep_the_daemons_priority() -> None:
    outcome = run_command(OWN_NICE, {}, timeout=5)
    assert outcome.ok and outcome.last_line() == str(base())
