"""`failoverctl status` prints what other machines wrote into ZooKeeper; none of it
may reach the operator's terminal raw. A member's `why` (which the verdict line
quotes) and its fence readiness (the FENCING column) are written by that member,
so an escape sequence in them could retitle the window, clear the screen or hide
lines. Real ZooKeeper, a real active daemon, a hostile mail2 member znode."""

from __future__ import annotations

from failoverd.config import load_config
from failoverd.zk.coordinator import Coordinator
from failoverd.zk.znodes import MemberStatus
from tests.integration.cluster import Cluster

OSC = "\x1b]0;owned\x07"
CSI = "\x1b[2J"


def test_a_members_why_and_fence_readiness_reach_the_terminal_escaped(cluster: Cluster) -> None:
    cluster.start("mail1")
    assert cluster.wait_active(timeout=20, via="mail1") == "mail1"
    coord = Coordinator(load_config(str(cluster.nodes["mail2"].config_path)))
    coord.start(timeout=5)
    try:
        hostile = MemberStatus(
            "mail2", "standby", True, None, "1.0", "127.0.0.1", False, "", "t",
            fence_ready={f"ssh{OSC}": True, f"command{CSI}": False},
            eligible=False, why=f"fence marker {OSC}stale{CSI}",
        )  # fmt: skip
        coord.write_member(hostile, timeout=5)
        out = cluster.ctl("status", "--wide", via="mail1")  # every text in full
        narrow = cluster.ctl("status", via="mail1")  # cut and wrapped: escaped all the same
    finally:
        coord.close()
    assert "\x1b" not in narrow.stdout and "\x07" not in narrow.stdout, repr(narrow.stdout)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text  # mail2 could not take over: degraded
    verdict = next(line for line in text.splitlines() if line.startswith("verdict:"))
    assert "mail2: fence marker \\x1b]0;owned\\x07stale\\x1b[2J" in verdict, verdict
    assert "command\\x1b[2J:DEAD,ssh\\x1b]0;owned\\x07:ok" in text, text
    assert "\x1b" not in text and "\x07" not in text, repr(text)
