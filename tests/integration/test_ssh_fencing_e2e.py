"""End to end on loopback: two daemons, real ZooKeeper, the standby fences over a real sshd."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import REPO, Cluster, wait_for
from tests.support.sshd import Sshd, keygen
from tests.support.zookeeper import ZooKeeperServer


@pytest.fixture
def ssh_cluster(
    zk: ZooKeeperServer, sshd: Sshd, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """mail2 fences mail1 over ssh (mail1's sshd runs mail1's fence-self)."""
    key = tmp_path / "fence_key"
    pub = keygen(key, "failoverd-fence@mail2")
    known = tmp_path / "known_hosts"
    known.write_text(sshd.host_key_line + "\n")
    c = Cluster(tmp_path / "c", zk.address)
    # From the checkout, as the other tests run: the toy service that fence-self
    # stops is the lab's (chaos/), which is not installed.
    sshd.authorize(
        pub,
        f"cd {REPO} && exec {sys.executable} -m failoverd.main "
        f"-c {c.nodes['mail1'].config_path} fence-self --from-ssh",
    )
    c.fencing = [
        {
            "type": "ssh",
            "user": sshd.user,
            "key_file": str(key),
            "known_hosts": str(known),
            "port": sshd.port,
            "timeout": "5s",
            "verify_ports": [c.ports["mail1"]],
        }
    ]
    c.write_config("mail2", 1)
    key.chmod(0o600)
    yield c
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.dump_logs())


def fence_events(c: Cluster, node: str) -> list[dict[str, object]]:
    return [e for e in c.nodes[node].events() if e.get("event") in ("fenced", "fence_failed")]


def test_killed_active_daemon_has_its_running_service_stopped_over_ssh_before_takeover(
    ssh_cluster: Cluster,
) -> None:
    c = ssh_cluster
    c.start()
    assert c.wait_active(timeout=20) == "mail1"
    wait_for(lambda: c.serving(), 10, "mail1's service up")
    c.nodes["mail1"].kill()  # the daemon dies, its service keeps serving
    assert c.wait_active(timeout=20, other_than="mail1") == "mail2"
    fenced = wait_for(lambda: fence_events(c, "mail2"), 5, "mail2's fence event")
    assert fenced[0]["event"] == "fenced" and fenced[0]["target"] == "mail1"
    assert any("ssh: ok" in m for m in fenced[0]["methods"])  # type: ignore[union-attr]
    runs = c.serving()
    mail1 = [r for r in runs if r[0] == "mail1"]
    mail2 = [r for r in runs if r[0] == "mail2"]
    assert mail1 and mail2 and mail1[-1][2] < mail2[0][1]
    c.assert_never_two_serving()


def test_active_daemon_frozen_past_its_session_never_acts_as_active_after_waking(
    ssh_cluster: Cluster,
) -> None:
    c = ssh_cluster
    c.start()
    assert c.wait_active(timeout=20) == "mail1"
    wait_for(lambda: c.serving(), 10, "mail1's service up")
    c.nodes["mail1"].signal(signal.SIGSTOP)
    try:
        assert c.wait_active(timeout=20, other_than="mail1") == "mail2"
        wait_for(lambda: [r for r in c.serving() if r[0] == "mail2"], 10, "mail2's service up")
    finally:
        woke = time.time()
        c.nodes["mail1"].signal(signal.SIGCONT)
    # mail1 wakes up believing it is active: it must see its lease is gone and stand down.
    wait_for(
        lambda: [e for e in c.nodes["mail1"].events() if e.get("event") == "demoted"],
        10,
        "mail1 to demote after waking",
    )
    time.sleep(c.session_timeout)  # a window in which mail1 must not start anything
    assert c.active() == "mail2"
    restarted = [r for r in c.serving() if r[0] == "mail1" and r[1] > woke]
    assert not restarted, f"mail1 served again after waking: {restarted}"
    promoted_after = [
        e
        for e in c.nodes["mail1"].events()
        if e.get("event") == "promoted" and str(e.get("timestamp")) > _iso(woke)
    ]
    assert not promoted_after
    c.assert_never_two_serving()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


def test_fence_check_tells_a_working_path_from_a_wrong_host_key(ssh_cluster: Cluster) -> None:
    c = ssh_cluster
    cfg = str(c.nodes["mail2"].config_path)

    def fence_check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "failoverd.cli", "-c", cfg, "fence-check", "mail1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    ok = fence_check()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout and "ssh" in ok.stdout
    assert not list(c.state_dirs["mail1"].glob("fence.marker"))  # fenced nothing
    known = Path(c.fencing[0]["known_hosts"])  # type: ignore[index]
    port = c.fencing[0]["port"]  # type: ignore[index]
    other = keygen(c.root / "other_host_key", "impostor").split()[:2]
    known.write_text(f"[127.0.0.1]:{port} {other[0]} {other[1]}\n")
    bad = fence_check()
    assert bad.returncode == 1
    assert "CHANGED" in bad.stdout or "not in" in bad.stdout
