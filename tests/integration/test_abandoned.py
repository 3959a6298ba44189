"""Abandoned operations (failoverd/resources/abandoned.py) with real processes: a command
that cannot be killed does not hang its caller, and every process of an
operation is found by its tag, setsid'ed or not."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from failoverd.process import KILL_WAIT, run_command
from failoverd.resources.abandoned import AbandonedWork, leftover_pids, processes_tagged, tagged
from tests.integration.cluster import wait_for

FREEZER = Path("/sys/fs/cgroup/freezer")


@pytest.fixture
def frozen_cgroup() -> Iterator[Path]:
    """A cgroup-v1 freezer group: a frozen task ignores SIGKILL until thawed, like a
    process in uninterruptible sleep on a hung mount."""
    if not (FREEZER / "tasks").exists():
        pytest.skip("no cgroup v1 freezer")
    group = FREEZER / f"failoverd-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    yield group
    (group / "freezer.state").write_text("THAWED")
    deadline = time.monotonic() + 5
    while (group / "tasks").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    group.rmdir()


def test_a_command_that_cannot_be_killed_does_not_hang_its_caller(frozen_cgroup: Path) -> None:
    """_kill_group waited for the killed group without a bound, so the
    worker thread (and whatever waited on it) hung as long as the kernel call did."""
    argv = ["sh", "-c", f"echo $$ > {frozen_cgroup}/tasks && exec sleep 60"]
    result: list[object] = []
    caller = threading.Thread(target=lambda: result.append(run_command(argv, {}, 0.5)))
    caller.start()
    wait_for(lambda: (frozen_cgroup / "tasks").read_text().strip(), 5, "the command in the group")
    (frozen_cgroup / "freezer.state").write_text("FROZEN")
    caller.join(timeout=0.5 + KILL_WAIT + 3.0)
    assert not caller.is_alive(), "run_command hangs on a process that cannot die"
    outcome = result[0]
    assert outcome.timed_out and outcome.returncode is None  # type: ignore[attr-defined]


def test_every_process_of_an_operation_is_found_by_its_tag_even_after_setsid(
    tmp_path: Path,
) -> None:
    tag, env = tagged({"FAILOVERD_NODE": "mail1"})
    other_tag, other_env = tagged({"FAILOVERD_NODE": "mail1"})
    pidfile = tmp_path / "helper.pid"
    # The start detaches a helper into its own session, then exits: the helper is in
    # no process group we know of, but it still carries the tag.
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' </dev/null >/dev/null 2>&1 &"
    assert run_command(["sh", "-c", script], env, 5).ok
    bystander = subprocess.Popen(["sleep", "60"], env={**os.environ, **other_env})
    try:
        helper = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, "pid"))
        assert processes_tagged({tag}) == [helper]
        work = AbandonedWork(tmp_path / "fence.lock")
        work.add(tag, "command x start", 1.0, None)
        assert work.kill_leftovers() == 1
        wait_for(lambda: not processes_tagged({tag}), 5, "the helper gone")
        assert bystander.poll() is None, "a process of another operation was killed"
        assert processes_tagged({other_tag}) == [bystander.pid]
    finally:
        bystander.kill()
        bystander.wait()


def own_cgroup() -> str:
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    found = dict(line.split(":", 2)[1:] for line in lines)
    return found.get("name=systemd") or found[""]


def test_a_leftover_that_dropped_its_tag_is_found_by_the_cgroup(tmp_path: Path) -> None:
    """On the real /proc: a helper that cleared its environment (or changed its uid,
    hiding it from a daemon without CAP_SYS_PTRACE) is missed by its tag but found
    as a member of the daemon's cgroup; a command the daemon is running right now,
    and the processes of its session, are not."""
    tag, env = tagged({"FAILOVERD_NODE": "mail1"})
    pidfile = tmp_path / "helper.pid"
    script = (
        f"setsid env -i sh -c 'echo $$ > {pidfile}; exec sleep 60' </dev/null >/dev/null 2>&1 &"
    )
    assert run_command(["sh", "-c", script], env, 5).ok
    running = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True)
    helper = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, "pid"))
    try:
        assert helper not in processes_tagged({tag})
        grandchild = int(
            wait_for(
                lambda: (
                    Path(f"/proc/{running.pid}/task/{running.pid}/children").read_text().strip()
                ),
                5,
                "the running command's child",
            )
        )
        found = leftover_pids({tag}, "/proc", own_cgroup(), os.getpid())
        assert helper in found
        assert running.pid not in found and grandchild not in found, "a running command was swept"
        assert os.getpid() not in found
    finally:
        os.kill(helper, signal.SIGKILL)
        os.killpg(running.pid, signal.SIGKILL)
        running.wait()
