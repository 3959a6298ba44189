"""failoverctl against real daemons: switchover, refusals, maintenance, status exit
codes, ZooKeeper down, ACLs, metrics, reload."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.cluster import Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer, free_port


def started(c: Cluster) -> str:
    # mail1 first: started together, a loaded machine can delay mail1's start by more
    # than mail2's priority delay, and the tests expect mail1 active.
    c.start(c.names[0])
    active = c.wait_active(timeout=20, via=c.names[0])
    c.start(*c.names[1:])
    wait_for(lambda: all(m["connected"] for m in c.status()["members"]), 10, "both connected")
    # Each has probed its fencing toward the other: status judges what they published.
    wait_for(lambda: all(m["fence_paths"] for m in c.status()["members"]), 10, "fence readiness")
    return active


def test_switchover_to_a_named_standby_hands_over_without_fencing(cluster: Cluster) -> None:
    assert started(cluster) == "mail1"
    out = cluster.ctl("switchover", "--to", "mail2")
    assert out.returncode == 0, out.stderr
    assert "mail1 -> mail2" in out.stdout
    assert cluster.active() == "mail2"
    assert not (cluster.root / "fence-calls.jsonl").exists()  # clean handover: no fence
    st = cluster.status()
    assert st["active"]["node"] == "mail2" and st["active"]["epoch"] >= 2
    cluster.assert_never_two_serving()
    # ...and back again without --to (any healthy standby).
    out = cluster.ctl("switchover")
    assert out.returncode == 0, out.stderr
    assert cluster.active() == "mail1"
    cluster.assert_never_two_serving()


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--to", "mail9"], "unknown node 'mail9'"),
        (["--to", "mail1"], "mail1 is already active"),
    ],
)
def test_switchover_is_refused_with_a_reason(
    cluster: Cluster, args: list[str], reason: str
) -> None:
    assert started(cluster) == "mail1"
    out = cluster.ctl("switchover", *args)
    assert out.returncode == 1 and reason in out.stderr
    assert cluster.active() == "mail1"


def test_switchover_is_refused_in_maintenance_and_to_a_disconnected_target(
    cluster: Cluster,
) -> None:
    assert started(cluster) == "mail1"
    assert cluster.ctl("maintenance", "on").returncode == 0
    out = cluster.ctl("switchover", "--to", "mail2")
    assert out.returncode == 1 and "maintenance" in out.stderr
    assert cluster.ctl("maintenance", "off").returncode == 0
    cluster.nodes["mail2"].stop()
    out = cluster.ctl("switchover", "--to", "mail2", via="mail1")
    assert out.returncode == 1 and "not connected" in out.stderr
    assert cluster.active(via="mail1") == "mail1"


def test_switchover_whose_target_cannot_start_ends_with_the_old_active_resuming(
    cluster: Cluster,
) -> None:
    assert started(cluster) == "mail1"
    (cluster.service_dir / "mail2.fail-start").touch()
    out = cluster.ctl("switchover", "--to", "mail2")
    assert out.returncode == 1 and "timed out" in out.stderr and "mail1 resumes" in out.stderr
    assert cluster.wait_active(timeout=30) == "mail1"
    cluster.assert_never_two_serving()


def test_maintenance_blocks_failover_when_the_active_dies(cluster: Cluster) -> None:
    assert started(cluster) == "mail1"
    assert cluster.ctl("maintenance", "on").returncode == 0
    status = cluster.ctl("status")
    assert status.returncode == 1 and "maintenance mode is on" in status.stdout
    cluster.nodes["mail1"].kill()
    time.sleep(3 * cluster.session_timeout)  # a window in which no takeover may happen
    assert cluster.active() is None
    assert json.loads(cluster.ctl("status", "--json").stdout)["lease_holder"] is None
    assert cluster.ctl("maintenance", "off").returncode == 0
    assert cluster.wait_active(timeout=20) == "mail2"  # with fencing: mail1 never handed over
    assert (cluster.root / "fence-calls.jsonl").exists()
    cluster.assert_never_two_serving()


def test_status_json_is_the_documented_contract_and_exit_code_tracks_health(
    cluster: Cluster,
) -> None:
    started(cluster)
    out = cluster.ctl("status", "--json")
    assert out.returncode == 0, out.stdout
    st = json.loads(out.stdout)
    assert set(st) == {
        "cluster", "lease_holder", "active", "maintenance", "members", "verdict",
        "scheduled_switchover", "fence_confirmed",
    }  # fmt: skip
    assert st["scheduled_switchover"] is None and st["fence_confirmed"] is None
    assert st["lease_holder"] == "mail1" and st["maintenance"] is False
    assert set(st["active"]) == {"node", "epoch", "since", "clean"}
    for m in st["members"]:
        assert set(m) == {
            "node", "role", "healthy", "epoch", "connected",
            "eligible", "why", "version", "commit", "fence_ready", "fence_paths",
        }  # fmt: skip
        assert isinstance(m["version"], str) and m["version"]
        # The daemons run from this checkout: the commit comes from git.
        assert re.fullmatch(r"[0-9a-f]{7,40}(\+dirty)?", m["commit"]), m
        assert isinstance(m["fence_ready"], dict) and isinstance(m["fence_paths"], dict)
    # The table shows which build each member runs (a rolling upgrade mixes them).
    table = cluster.ctl("status").stdout
    assert f"{st['members'][0]['version']} ({st['members'][0]['commit']})" in table
    rows = {m["node"]: m for m in st["members"]}
    assert rows["mail2"]["eligible"] is True and rows["mail2"]["why"] == ""
    assert rows["mail1"]["eligible"] is False and "active" in rows["mail1"]["why"]
    assert isinstance(st["verdict"], str) and st["verdict"].startswith("healthy")
    cluster.nodes["mail2"].stop()
    wait_for(lambda: cluster.ctl("status", via="mail1").returncode == 1, 10, "degraded status")
    out = cluster.ctl("status", via="mail1")
    assert "no standby could take over" in out.stdout
    assert "mail2 could not take over: it is not connected" in out.stdout


def test_cli_with_zookeeper_down_fails_fast_with_a_message(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "c", f"127.0.0.1:{free_port()}")
    t0 = time.monotonic()
    out = c.ctl("status")
    assert out.returncode == 3  # Nagios UNKNOWN: the state cannot be known
    assert "cannot reach ZooKeeper" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr  # no kazoo log spam
    assert time.monotonic() - t0 < 10


def test_cli_usage_errors_exit_2_without_a_traceback(cluster: Cluster) -> None:
    for args in (["swtichover"], ["maintenance", "maybe"], ["failover", "--to", "mail2"]):
        out = cluster.ctl(*args)
        assert out.returncode == 2, args
        assert "Usage" in out.stderr or "Error" in out.stderr
        assert "Traceback" not in out.stderr


def test_digest_acl_keeps_other_clients_out(zk: ZooKeeperServer, tmp_path: Path) -> None:
    secret = tmp_path / "zk.secret"
    secret.write_text("failoverd:s3cret\n")
    secret.chmod(0o600)
    c = Cluster(
        tmp_path / "c",
        zk.address,
        extra={
            "zookeeper": {
                # Another nodes identity than the other tests' clusters: its own root.
                "root": "/failoverd-s3cret",
                "auth": {"scheme": "digest", "credential_file": str(secret)},
            }
        },
    )
    try:
        c.start()
        assert c.wait_active(timeout=20) == "mail1"  # the CLI (same credential) reads it
        anon = KazooClient(hosts=zk.address)
        anon.start()
        try:
            with pytest.raises(NoAuthError):
                anon.get(f"/failoverd-s3cret/{c.cluster}/active")
            with pytest.raises(NoAuthError):
                anon.delete(f"/failoverd-s3cret/{c.cluster}/lock")
        finally:
            anon.stop()
            anon.close()
    finally:
        c.stop()


def test_world_readable_credential_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "zk.secret"
    secret.write_text("failoverd:s3cret\n")
    secret.chmod(0o644)
    c = Cluster(
        tmp_path / "c",
        "127.0.0.1:1",
        extra={"zookeeper": {"auth": {"scheme": "digest", "credential_file": str(secret)}}},
    )
    out = c.ctl("status")
    assert out.returncode == 2
    assert "zookeeper.auth.credential_file" in out.stderr and "chmod 600" in out.stderr


def test_metrics_endpoint_reports_role_epoch_and_lease(zk: ZooKeeperServer, tmp_path: Path) -> None:
    port = free_port()
    c = Cluster(tmp_path / "c", zk.address, extra={"metrics": {"listen": f"127.0.0.1:{port}"}})
    try:
        c.start("mail1")
        assert c.wait_active(timeout=20) == "mail1"

        def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(body.decode())
                for s in fam.samples
            }

        samples = wait_for(
            lambda: (m := scrape()) and m.get(("failoverd_role", (("role", "active"),))) == 1 and m,
            10,
            "role=active in metrics",
        )
        roles = [v for (name, labels), v in samples.items() if name == "failoverd_role"]
        assert sorted(roles) == [0, 0, 0, 0, 0, 0, 1]
        assert samples[("failoverd_epoch", ())] == 1
        assert 0 < samples[("failoverd_lease_remaining_seconds", ())] <= c.session_timeout
        assert samples[("failoverd_transitions_total", (("reason", "takeover"),))] == 1
    finally:
        c.stop()


def test_sighup_applies_logging_and_names_what_needs_a_restart(cluster: Cluster) -> None:
    started(cluster)
    cluster.extra = {"log": {"level": "info"}, "switchover": {"timeout": "9s"}}
    cluster.write_config("mail1", 0)
    cluster.nodes["mail1"].signal(signal.SIGHUP)
    reloaded = wait_for(
        lambda: [e for e in cluster.nodes["mail1"].events() if e.get("event") == "reloaded"],
        10,
        "reloaded event",
    )
    assert reloaded[0]["needs_restart"] == ["switchover"]
    assert cluster.active() == "mail1"


def test_forced_failover_promotes_the_named_node_with_fencing_despite_maintenance(
    cluster: Cluster,
) -> None:
    assert started(cluster) == "mail1"
    assert cluster.ctl("maintenance", "on").returncode == 0
    refused = cluster.ctl("failover", "--to", "mail2", "--force")
    assert refused.returncode == 1 and "mail1 holds the lease" in refused.stderr
    cluster.nodes["mail1"].kill()
    wait_for(
        lambda: cluster.status()["lease_holder"] is None, 10, "the dead active's lease to expire"
    )
    out = cluster.ctl("failover", "--to", "mail2", "--force")
    assert out.returncode == 0, out.stderr
    assert "failover to mail2 done" in out.stdout
    assert cluster.active() == "mail2"
    calls = (cluster.root / "fence-calls.jsonl").read_text()
    assert '"target": "mail1"' in calls  # fencing still ran
    cluster.assert_never_two_serving()


def test_daemon_signals_readiness_and_pets_the_systemd_watchdog(
    zk: ZooKeeperServer, tmp_path: Path
) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.5)
    c = Cluster(tmp_path / "c", zk.address, extra={"watchdog": {"systemd": True, "timeout": "2s"}})
    try:
        c.nodes["mail1"].start(env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"})
        got: list[str] = []

        def receive(word: str) -> bool:
            try:
                got.extend(sock.recv(4096).decode().splitlines())
            except TimeoutError:
                pass
            return any(line.startswith(word) for line in got)

        wait_for(lambda: receive("READY=1"), 20, "READY=1")
        assert c.active(via="mail1") == "mail1"
        got.clear()
        wait_for(lambda: receive("WATCHDOG=1") and got.count("WATCHDOG=1") >= 2, 5, "pets")
    finally:
        c.stop()
        sock.close()
