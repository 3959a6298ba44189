"""Which processes the abandoned-work sweep kills (failoverd/resources/abandoned.py),
judged on fake /proc trees: by the operation's random tag, or by membership of the
daemon's own service cgroup; never by a fixed tag, never anything else."""

from __future__ import annotations

import signal
from pathlib import Path

from failoverd.resources.abandoned import (
    OPERATION_ENV,
    AbandonedWork,
    leftover_pids,
    processes_tagged,
    service_cgroup,
    tagged,
)

ME = 500  # the daemon's pid in the fake trees
SERVICE = "/system.slice/failoverd.service"
ZEROS = "0" * 16


def proc_entry(
    proc: Path,
    pid: int,
    *,
    ppid: int = 1,
    sid: int | None = None,
    cgroup: str = "/user.slice/user-1000.slice/session-1.scope",
    env: dict[str, str] | None = None,
    state: str = "S",
) -> None:
    """One process of a fake /proc; env None: its environ cannot be read (another
    user's process, the daemon lacking CAP_SYS_PTRACE)."""
    d = proc / str(pid)
    d.mkdir(parents=True)
    sid = pid if sid is None else sid
    (d / "stat").write_text(f"{pid} (some prog) {state} {ppid} {sid} {sid} 0 -1 4194560 0\n")
    (d / "cgroup").write_text(f"0::{cgroup}\n")
    if env is not None:
        (d / "environ").write_bytes(b"".join(f"{k}={v}\0".encode() for k, v in env.items()))


def test_every_operation_gets_its_own_random_tag() -> None:
    tags = {tagged({})[0] for _ in range(50)}
    assert len(tags) == 50 and ZEROS not in tags
    tag, env = tagged({"FAILOVERD_NODE": "mail1"})
    assert env == {"FAILOVERD_NODE": "mail1", OPERATION_ENV: tag}


def test_no_tag_of_an_unreadable_record_matches_a_process_that_carries_zeros(
    tmp_path: Path,
) -> None:
    record = tmp_path / "abandoned.json"
    record.write_bytes(b"\x00")
    proc = tmp_path / "proc"
    proc_entry(proc, 700, env={OPERATION_ENV: ZEROS})
    work = AbandonedWork(tmp_path / "fence.lock", record)
    assert work.pending, "an unreadable record keeps the node unclean"
    tags = {op.tag for op in work.ops.values()}
    assert processes_tagged(tags, str(proc)) == [], f"tags {tags} match a bystander"


def test_an_unreadable_record_kills_nothing_outside_the_service_cgroup(tmp_path: Path) -> None:
    record = tmp_path / "abandoned.json"
    record.write_bytes(b"{}")
    proc = tmp_path / "proc"
    proc_entry(proc, ME, cgroup=SERVICE)
    proc_entry(proc, 700, env={OPERATION_ENV: ZEROS})  # anywhere else: left alone
    proc_entry(proc, 701, cgroup=SERVICE, env=None)  # a leftover of ours, uid changed
    killed: list[tuple[int, int]] = []
    work = AbandonedWork(
        tmp_path / "fence.lock",
        record,
        proc=str(proc),
        cgroup=SERVICE,
        pid=ME,
        kill=lambda pid, sig: killed.append((pid, sig)),
    )
    assert work.pending and "unreadable" in work.reason()
    assert work.kill_leftovers() == 1
    assert killed == [(701, signal.SIGKILL)]


def test_a_leftover_in_the_service_cgroup_is_found_without_reading_its_environment(
    tmp_path: Path,
) -> None:
    proc = tmp_path / "proc"
    proc_entry(proc, ME, cgroup=SERVICE)
    proc_entry(proc, 601, ppid=ME, cgroup=SERVICE, env=None)  # a running health check
    proc_entry(proc, 602, ppid=601, sid=601, cgroup=SERVICE, env=None)  # its child
    proc_entry(proc, 603, ppid=1, sid=603, cgroup=SERVICE, env=None)  # setsid'ed, changed uid
    proc_entry(proc, 604, ppid=1, cgroup=SERVICE + "/sub", env=None)  # not our cgroup
    proc_entry(proc, 605, ppid=1, cgroup="/system.slice/postfix.service", env=None)
    proc_entry(proc, 606, ppid=1, cgroup=SERVICE, state="Z")  # a zombie is gone
    assert leftover_pids(set(), str(proc), SERVICE, ME) == [603]


def test_tag_or_cgroup_membership(tmp_path: Path) -> None:
    tag, _ = tagged({})
    other, _ = tagged({})
    proc = tmp_path / "proc"
    proc_entry(proc, ME, cgroup=SERVICE)
    proc_entry(proc, 610, cgroup=SERVICE, env={"PATH": "/bin"})
    proc_entry(proc, 611, env={OPERATION_ENV: tag})  # moved out (systemd-run --scope)
    proc_entry(proc, 612, env={OPERATION_ENV: other})  # another operation, elsewhere
    assert leftover_pids({tag}, str(proc), SERVICE, ME) == [610, 611]
    # Without a service cgroup of its own (not run as a systemd service): by tag only.
    assert leftover_pids({tag}, str(proc), None, ME) == [611]


def test_the_service_cgroup_is_used_only_when_the_daemon_is_the_service(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc_entry(proc, ME, cgroup=SERVICE)
    (proc / "self").symlink_to(proc / str(ME))
    unit = {"INVOCATION_ID": "0123abcd"}
    assert service_cgroup(str(proc), unit, parent=1) == SERVICE
    # A test run, a shell, a CI runner's child: its cgroup is not the daemon's own,
    # and sweeping it would kill whatever else lives there.
    assert service_cgroup(str(proc), {}, parent=1) is None
    assert service_cgroup(str(proc), unit, parent=4242) is None
    (proc / str(ME) / "cgroup").write_text("0::/user.slice/user-0.slice/session-4.scope\n")
    assert service_cgroup(str(proc), unit, parent=1) is None
    # cgroup v1 (hybrid): the name=systemd hierarchy says which unit.
    (proc / str(ME) / "cgroup").write_text(
        "12:memory:/system.slice/failoverd.service\n1:name=systemd:" + SERVICE + "\n0::/\n"
    )
    assert service_cgroup(str(proc), unit, parent=1) == SERVICE


def test_the_demotion_kills_by_tag_only_before_its_orderly_stop(tmp_path: Path) -> None:
    tag, _ = tagged({})
    proc = tmp_path / "proc"
    proc_entry(proc, ME, cgroup=SERVICE)
    proc_entry(proc, 620, cgroup=SERVICE, env={OPERATION_ENV: tag})  # the abandoned start
    proc_entry(proc, 621, cgroup=SERVICE, env={"PATH": "/bin"})  # a service started fine
    killed: list[int] = []
    work = AbandonedWork(
        tmp_path / "fence.lock",
        proc=str(proc),
        cgroup=SERVICE,
        pid=ME,
        kill=lambda pid, sig: killed.append(pid),
    )
    work.add(tag, "resources[1].start", 5.0, None)
    assert work.kill_leftovers(by_cgroup=False) == 1 and killed == [620]
    assert work.kill_leftovers() == 2 and killed == [620, 620, 621]
