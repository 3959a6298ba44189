"""Role-change hooks against real daemons: they run after the
transition with the documented environment; a failing or hanging hook changes
nothing but a log line, and a hanging one is killed with its whole process group."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import Cluster, wait_for
from tests.support.webhook import receiver
from tests.support.zookeeper import ZooKeeperServer

PY = sys.executable
RECORD = """
import json, os, sys, time
env = {k: v for k, v in os.environ.items() if k.startswith("FAILOVERD_")}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"at": time.time(), "env": env}) + "\\n")
"""
# Starts a helper in its own process group's reach, says its pid, then hangs.
HANG = """
import subprocess, sys, time
helper = subprocess.Popen(["sleep", "120"])
with open(sys.argv[1], "a") as f:
    f.write(f"{helper.pid}\\n")
time.sleep(120)
"""
FAIL = "import sys; print('pager unreachable'); sys.exit(3)"
EVENTS = ["promoted", "demoted", "fenced", "fence_failed", "stop_failed", "flap_limit"]


@pytest.fixture
def cluster(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    record, pids = tmp_path / "hooks.jsonl", tmp_path / "hang.pids"
    hooks = [
        {"on": ["promoted"], "argv": [PY, "-c", FAIL]},
        {"on": ["promoted"], "argv": [PY, "-c", HANG, str(pids)], "timeout": "1s"},
        {"on": EVENTS, "argv": [PY, "-c", RECORD, str(record)], "timeout": "10s"},
    ]
    c = Cluster(tmp_path / "c", zk.address, extra={"hooks": hooks})
    yield c
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.dump_logs())


def records(c: Cluster) -> list[dict[str, Any]]:
    path = c.root.parent / "hooks.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def recorded(c: Cluster, event: str, node: str) -> dict[str, Any] | None:
    for r in records(c):
        if r["env"]["FAILOVERD_EVENT"] == event and r["env"]["FAILOVERD_NODE"] == node:
            return r
    return None


def logged_at(c: Cluster, node: str, event: str) -> float:
    e = next(e for e in c.nodes[node].events() if e.get("event") == event)
    return datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()


def _dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


def test_hooks_run_after_the_transition_and_cannot_hold_it_up(cluster: Cluster) -> None:
    cluster.start("mail1")
    assert cluster.wait_active(timeout=20, via="mail1") == "mail1"
    cluster.start("mail2")
    got = wait_for(lambda: recorded(cluster, "promoted", "mail1"), 20, "mail1's promoted hook")
    env = got["env"]
    assert env["FAILOVERD_EPOCH"] == "1" and env["FAILOVERD_CLUSTER"] == cluster.cluster
    assert env["FAILOVERD_REASON"] and "FAILOVERD_PEER" not in env
    promoted = logged_at(cluster, "mail1", "promoted")
    # After the transition, and only after the failing and the hanging hook (1 s).
    assert got["at"] >= promoted + 1.0, (got["at"], promoted)
    events = cluster.nodes["mail1"].events()
    failed = [e for e in events if e.get("event") == "hook_failed"]
    assert failed and failed[0]["exit_code"] == 3 and "pager unreachable" in failed[0]["output"]
    timed_out = [e for e in events if e.get("event") == "hook_timed_out"]
    assert timed_out and timed_out[0]["timeout"] == 1.0
    assert timed_out[0]["took_ms"] < 3000  # killed at its timeout, not whenever it ends
    # The hanging hook's helper went with it: the whole process group was killed.
    helper = int((cluster.root.parent / "hang.pids").read_text().split()[0])
    wait_for(lambda: _dead(helper), 5, f"the hanging hook's helper {helper} to be killed")
    # None of it touched the role: mail1 is still the active.
    assert cluster.active(via="mail1") == "mail1"
    wait_for(lambda: cluster.ctl("status").returncode == 0, 20, "a healthy cluster")

    # A switchover: mail1 reports demoted (epoch 1), mail2 promoted (epoch 2).
    out = cluster.ctl("switchover", "--to", "mail2")
    assert out.returncode == 0, out.stdout + out.stderr
    demoted = wait_for(lambda: recorded(cluster, "demoted", "mail1"), 10, "demoted hook")
    assert demoted["env"]["FAILOVERD_EPOCH"] == "1"
    assert "switchover" in demoted["env"]["FAILOVERD_REASON"]
    wait_for(lambda: recorded(cluster, "promoted", "mail2"), 20, "mail2's promoted hook")
    assert recorded(cluster, "promoted", "mail2")["env"]["FAILOVERD_EPOCH"] == "2"  # type: ignore[index]

    # mail2 dies without handing over: mail1 fences it (fenced, with the peer) and promotes.
    t0 = time.monotonic()
    cluster.nodes["mail2"].kill()
    assert cluster.wait_active(timeout=20, other_than="mail2", via="mail1") == "mail1"
    fenced = wait_for(lambda: recorded(cluster, "fenced", "mail1"), 10, "fenced hook")
    assert fenced["env"]["FAILOVERD_PEER"] == "mail2"
    assert fenced["env"]["FAILOVERD_EPOCH"] == "3"
    again = wait_for(
        lambda: [
            r for r in records(cluster)
            if r["env"]["FAILOVERD_EVENT"] == "promoted" and r["env"]["FAILOVERD_EPOCH"] == "3"
        ],
        20,
        "mail1's second promoted hook",
    )  # fmt: skip
    assert fenced["at"] < again[0]["at"]  # in the order the events happened
    print(f"failover with hooks configured: active again after {time.monotonic() - t0:.2f}s")
    cluster.assert_never_two_serving()
    assert os.path.exists(cluster.root.parent / "hooks.jsonl")


HOOKS = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "hooks"
EXAMPLE_ENV = {
    "FAILOVERD_EVENT": "fence_failed",
    "FAILOVERD_NODE": "mail1",
    "FAILOVERD_CLUSTER": "east",
    "FAILOVERD_EPOCH": "4",
    "FAILOVERD_PEER": "mail2",
    "FAILOVERD_REASON": 'ssh: failed: "connection refused"',
}


def test_the_webhook_example_posts_the_event_as_json(tmp_path: Path) -> None:
    """Against a receiver on loopback: a test never pages a real host."""
    import subprocess

    with receiver(tmp_path) as pager:
        env = {"PATH": os.environ["PATH"], **EXAMPLE_ENV}
        run = [str(HOOKS / "page-webhook"), str(pager.url)]
        out = subprocess.run(run, env=env, capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        body = json.loads(pager.bodies[0])
        assert body == {
            "event": "fence_failed", "node": "mail1", "cluster": "east", "epoch": "4",
            "peer": "mail2", "reason": 'ssh: failed: "connection refused"',
        }  # fmt: skip
        pager.stop()
        out = subprocess.run(run, env=env, capture_output=True, text=True, timeout=20)
        assert out.returncode != 0  # nobody listening: the hook fails, failoverd logs it


def test_the_syslog_example_logs_a_critical_line(tmp_path: Path) -> None:
    import socket
    import subprocess

    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    try:
        env = {"PATH": os.environ["PATH"], "SYSLOG_SOCKET": path, **EXAMPLE_ENV}
        out = subprocess.run(
            [str(HOOKS / "syslog-event")], env=env, capture_output=True, text=True, timeout=20
        )
        assert out.returncode == 0, out.stderr
        line = sock.recv(4096).decode()
    finally:
        sock.close()
    assert line.startswith("<26>")  # daemon (3) * 8 + crit (2)
    assert "failoverd-hook" in line and "event=fence_failed" in line and "peer=mail2" in line


def test_stop_failed_hook_names_the_failure(zk: ZooKeeperServer, tmp_path: Path) -> None:
    record = tmp_path / "hooks.jsonl"
    hooks = [{"on": ["stop_failed"], "argv": [PY, "-c", RECORD, str(record)]}]
    c = Cluster(tmp_path / "c", zk.address, extra={"hooks": hooks})
    fail = [PY, "-c", "import sys; sys.exit(1)"]
    c.extra = {"hooks": hooks, "resources": [{"type": "command", "start": fail, "stop": fail}]}
    c.write_config("mail2", 1)
    try:
        c.start("mail2")  # its start-up clean-up cannot stop the resource: dirty
        got = wait_for(lambda: recorded(c, "stop_failed", "mail2"), 20, "stop_failed hook")
        assert "exited with 1" in got["env"]["FAILOVERD_REASON"]
        assert got["env"]["FAILOVERD_EPOCH"] == "" and "FAILOVERD_PEER" not in got["env"]
    finally:
        c.stop()
