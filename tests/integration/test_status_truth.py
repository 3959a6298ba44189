"""`failoverctl status` tells the truth: a standby that could not take
over says so and why, and the exit code follows (0 healthy, 1 degraded, 3 unknown)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.integration.cluster import Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer, free_port

FAIL = [sys.executable, "-c", "import sys; sys.exit(1)"]


def _mail2_row(c: Cluster) -> dict[str, Any]:
    st = c.status(via="mail1")
    return next(m for m in st["members"] if m["node"] == "mail2")


def member_writes(c: Cluster, name: str) -> int:
    """How often the member znode was written (its data version)."""
    from failoverd.config import load_config
    from failoverd.zk.coordinator import Coordinator

    coord = Coordinator(load_config(str(c.nodes[name].config_path)))
    coord.start(timeout=5)
    try:
        _, stat = coord.client.get(f"{coord.members_path}/{name}")
        return int(stat.version)
    finally:
        coord.close()


def _assert_ineligible_and_degraded(c: Cluster, words: str) -> None:
    c.start("mail1")
    assert c.wait_active(timeout=20, via="mail1") == "mail1"
    c.start("mail2")
    row = wait_for(
        lambda: (r := _mail2_row(c))["connected"] and r["role"] == "standby" and r, 20, "mail2 up"
    )

    def says() -> dict[str, Any] | None:
        r = _mail2_row(c)
        return r if words in r["why"] else None

    row = wait_for(says, 10, f"mail2's why to say {words!r}")
    assert row["eligible"] is False, row
    out = c.ctl("status", "--json", via="mail1")
    assert out.returncode == 1, out.stdout + out.stderr
    st = json.loads(out.stdout)
    assert st["verdict"].startswith("degraded") and words in st["verdict"]
    table = c.ctl("status", "--wide", via="mail1")  # every sentence on one line
    assert table.returncode == 1
    assert f"mail2 could not take over: {row['why']}" in table.stdout


def test_a_dirty_standby_is_not_eligible_and_status_is_degraded(cluster: Cluster) -> None:
    """mail2's resource will not stop (at its start-up clean-up): it is dirty."""

    def failing_stop(cfg: dict[str, Any]) -> None:
        cfg["resources"][0]["stop"] = FAIL

    cluster.edit_config("mail2", failing_stop)
    _assert_ineligible_and_degraded(cluster, "dirty")


def test_a_standby_with_an_unreadable_fence_marker_is_not_eligible(cluster: Cluster) -> None:
    (cluster.state_dirs["mail2"] / "fence.marker").write_text("garbage")
    _assert_ineligible_and_degraded(cluster, "fence marker")


def test_an_unhealthy_standby_names_its_failing_check(cluster: Cluster) -> None:
    def failing_check(cfg: dict[str, Any]) -> None:
        cfg["health"]["checks"] = [{"type": "command", "argv": FAIL, "timeout": "2s"}]

    cluster.edit_config("mail2", failing_check)
    _assert_ineligible_and_degraded(cluster, "health check failing: command")


def test_zookeeper_stopped_is_exit_3_in_one_line(tmp_path: Path) -> None:
    server = ZooKeeperServer(tmp_path / "zk", free_port())
    server.start()
    server.wait_serving()
    c = Cluster(tmp_path / "c", server.address)
    try:
        c.start()
        c.wait_active(timeout=20)
        wait_for(lambda: c.ctl("status").returncode == 0, 20, "healthy status")
        server.stop()
        out = c.ctl("status", "--json")
        assert out.returncode == 3
        assert out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot reach ZooKeeper" in lines[0], out.stderr
    finally:
        c.stop()
        server.stop()


def test_config_after_the_subcommand_and_from_the_environment(cluster: Cluster) -> None:
    import os
    import subprocess

    from tests.integration.cluster import REPO

    cluster.start()
    cluster.wait_active(timeout=20)
    path = str(cluster.nodes["mail2"].config_path)
    run = [sys.executable, "-m", "failoverd.cli"]
    env = {**os.environ, "FAILOVERD_CONFIG": path}
    for argv, e in (([*run, "status", "--json", "-c", path], None), ([*run, "status"], env)):
        out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=e, timeout=30)
        assert out.returncode in (0, 1), out.stderr  # it reached the cluster
        assert cluster.cluster in out.stdout


def test_a_standby_backing_off_says_until_when_then_becomes_eligible(
    zk: ZooKeeperServer, tmp_path: Path
) -> None:
    """mail1 demotes for failing health and backs off (flap.backoff, 6 s here); once
    healthy again, it names the back-off's end and becomes eligible when it passes."""
    flag = tmp_path / "mail1-sick"
    check = [sys.executable, "-c", f"import os, sys; sys.exit(os.path.exists({str(flag)!r}))"]
    c = Cluster(tmp_path / "c", zk.address, extra={"flap": {"backoff": "6s"}})

    def sick_when_flagged(cfg: dict[str, Any]) -> None:
        cfg["health"]["checks"] = [{"type": "command", "argv": check, "timeout": "2s"}]

    c.edit_config("mail1", sick_when_flagged)
    try:
        c.start("mail1")
        assert c.wait_active(timeout=20, via="mail1") == "mail1"
        c.start("mail2")
        wait_for(lambda: _mail2_row(c)["eligible"], 20, "mail2 eligible")
        flag.touch()
        assert c.wait_active(timeout=20, other_than="mail1", via="mail2") == "mail2"
        flag.unlink()

        def mail1() -> dict[str, Any]:
            st = c.status(via="mail2")
            return next(m for m in st["members"] if m["node"] == "mail1")

        def backing_off() -> dict[str, Any] | None:
            r = mail1()
            return r if "backing off until" in r["why"] else None

        row = wait_for(backing_off, 5, "mail1's why to name the back-off's end")
        writes_before = member_writes(c, "mail1")
        assert row["eligible"] is False and row["role"] == "standby"
        assert c.ctl("status", via="mail2").returncode == 1
        # The deadline, not a countdown: the sentence stays the same until it ends ...
        assert mail1()["why"] in (row["why"], "")
        wait_for(lambda: mail1()["eligible"], 10, "mail1 eligible once the back-off ended")
        # ... so the seconds of back-off (tens of ticks) cost one write, its end (and
        # at most one more: learning mail2's epoch updates seen_epoch once).
        assert 1 <= member_writes(c, "mail1") - writes_before <= 2
        assert c.ctl("status", via="mail2").returncode == 0
    finally:
        c.stop()


def test_an_unreadable_lock_is_named_and_the_json_stays_parseable(cluster: Cluster) -> None:
    """Garbage in the lock znode: somebody's session holds the lock, so status must not
    say "no node holds the lease"; and the library's error line about it goes to stderr,
    not into the JSON that scripts parse."""
    from failoverd.config import load_config
    from failoverd.zk.coordinator import Coordinator

    cluster.start("mail1")
    assert cluster.wait_active(timeout=20, via="mail1") == "mail1"
    cluster.stop()  # a clean handover: the lock is gone, the tree and its ACL stay
    coord = Coordinator(load_config(str(cluster.nodes["mail1"].config_path)))
    coord.start(timeout=5)
    try:
        coord.client.create(coord.lock_path, b"\xff not json", ephemeral=True)
        out = cluster.ctl("status", "--json")
        st = json.loads(out.stdout)  # nothing but the one object on stdout
        assert out.returncode == 1, out.stdout + out.stderr
        assert st["lease_holder"] is None  # the contract: str|null, no name to give
        assert st["verdict"].startswith("degraded") and "unreadable" in st["verdict"]
        assert "no node holds the lease" not in st["verdict"]
        assert "lock_unreadable" in out.stderr
        table = cluster.ctl("status")
        assert table.returncode == 1 and "lock_unreadable" not in table.stdout
        assert "lease holder: (unreadable)" in table.stdout, table.stdout
    finally:
        coord.close()


def test_a_standby_that_cannot_verifiably_fence_the_active_is_a_warning_at_once(
    zk: ZooKeeperServer, tmp_path: Path
) -> None:
    """The chain: a power switch with a status action, then the same switch without
    one (what most configs have: nothing can check it). The status action starts
    failing: mail2 still has a method it would try, so it stays eligible, but none it
    can verify. Within one probe interval status exits 1 and says why, and mail2
    raises fence_path_lost; once the check passes again, exit 0."""
    root = tmp_path / "c"
    broken = tmp_path / "pdu-broken"
    check = [sys.executable, "-c", f"import os, sys; sys.exit(os.path.exists({str(broken)!r}))"]
    fence = [sys.executable, "-m", "tests.support.localfence", str(root), "{node}"]
    checked = {"type": "command", "argv": fence, "check_argv": check, "check_interval": "2s"}
    unchecked = {"type": "command", "argv": fence}
    c = Cluster(root, zk.address, fencing=[checked, unchecked])
    try:
        c.start("mail1")
        assert c.wait_active(timeout=20, via="mail1") == "mail1"
        c.start("mail2")
        wait_for(lambda: c.ctl("status").returncode == 0, 20, "healthy status")
        broken.touch()
        # One interval (2 s) plus the probe and the member write, on a loaded machine.
        wait_for(lambda: c.ctl("status").returncode == 1, 8, "status to warn")
        out = c.ctl("status")
        assert "no standby can verifiably fence the active mail1" in out.stdout, out.stdout
        # The verdict wraps at 100 columns: read it as one sentence.
        assert "mail2: command FAIL, command-2 UNVERIFIED" in " ".join(out.stdout.split())
        row = _mail2_row(c)
        assert row["eligible"] is True  # it would still try the unchecked switch
        assert row["fence_paths"] == {"mail1": {"command": "FAIL", "command-2": "UNVERIFIED"}}
        lost = [e for e in c.nodes["mail2"].events() if e.get("event") == "fence_path_lost"]
        assert len(lost) == 1 and lost[0]["peer"] == "mail1", lost
        broken.unlink()
        wait_for(lambda: c.ctl("status").returncode == 0, 8, "status healthy again")
    finally:
        c.stop()
