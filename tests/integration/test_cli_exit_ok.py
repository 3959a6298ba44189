"""Exit 0 from every failoverctl command on a healthy cluster, with a node's config
and with an operator's own config found at its default place by a person who is not
root, in an environment without HOME or USER (`env -i`, cron)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from failoverd.zk.acl import digest_id
from tests.integration.cluster import Cluster, wait_for
from tests.support.access import write_credential
from tests.support.ctl import clean_env, ctl, write
from tests.support.zookeeper import ZooKeeperServer, free_port

HISTORY_FIELDS = {"time", "node", "event", "epoch", "reason", "by"}
LOCAL_FIELDS = {
    "node", "cluster", "role", "epoch", "healthy", "eligible", "why", "maintenance",
    "reason", "version", "priority", "lease_holder", "lease_valid", "lease_remaining",
    "loop_alive",
}  # fmt: skip


def started(c: Cluster) -> None:
    c.start("mail1")
    assert c.wait_active(timeout=20, via="mail1") == "mail1"
    c.start("mail2")
    wait_for(lambda: all(m["connected"] for m in c.status()["members"]), 10, "both connected")
    wait_for(lambda: c.ctl("status").returncode == 0, 10, "a healthy status")


def ok(c: Cluster, *args: str, via: str = "mail2") -> str:
    out = ctl("-c", str(c.nodes[via].config_path), *args)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def test_every_command_exits_0_when_it_did_what_was_asked(cluster: Cluster, tmp_path: Path) -> None:
    ports = {name: free_port() for name in cluster.names}
    for name, port in ports.items():
        cluster.edit_config(
            name, lambda cfg, p=port: cfg.update(metrics={"listen": f"127.0.0.1:{p}"})
        )
    started(cluster)
    assert "verdict: one healthy active (mail1)" in ok(cluster, "status")
    assert json.loads(ok(cluster, "status", "--json"))["verdict"].startswith("healthy")
    ok(cluster, "maintenance", "on", "--reason", "exit 0")
    ok(cluster, "maintenance", "off")
    entries = json.loads(ok(cluster, "history", "--json"))
    assert entries and all(set(e) == HISTORY_FIELDS for e in entries), entries
    assert "maintenance_on" in ok(cluster, "history")
    # The node's own view: from metrics.listen in its config, or from --url.
    local = ok(cluster, "status", "--local", via="mail1")
    assert local.startswith("local view of mail1 (cluster ") and "ZooKeeper not consulted" in local
    doc = json.loads(
        ok(cluster, "status", "--local", "--json", "--url", f"http://127.0.0.1:{ports['mail2']}")
    )
    assert set(doc) == LOCAL_FIELDS and doc["node"] == "mail2" and doc["role"] == "standby"
    assert "mail1 -> mail2" in ok(cluster, "switchover", "--to", "mail2")
    ok(cluster, "backup", str(tmp_path / "backup.json"))
    ok(cluster, "fix-acl", via="mail1")
    ok(cluster, "fence-check", "mail1")
    digest = subprocess.run(
        [*ctl_argv(), "digest", "alice", "--json"], input="pw\n", capture_output=True,
        text=True, env=clean_env(), check=False,
    )  # fmt: skip
    assert digest.returncode == 0 and json.loads(digest.stdout) == {
        "user": "alice",
        "id": digest_id("alice", "pw"),
    }
    # failover: the active (mail2 now) is gone, and maintenance kept mail1 from taking over.
    ok(cluster, "maintenance", "on")
    cluster.nodes["mail2"].kill()
    wait_for(lambda: cluster.status(via="mail1")["lease_holder"] is None, 15, "lease expired")
    assert "failover to mail1 done" in ok(
        cluster, "failover", "--to", "mail1", "--force", via="mail1"
    )
    # restore: for a cluster whose daemons are stopped.
    cluster.stop()
    wait_for(lambda: not any(m["connected"] for m in cluster.status()["members"]), 15, "gone")
    assert "history:" in ok(cluster, "restore", str(tmp_path / "backup.json"), via="mail1")


def ctl_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "failoverd.cli"]


def test_an_operator_who_is_not_root_works_from_their_own_config(
    zk: ZooKeeperServer, make_cluster, tmp_path: Path
) -> None:
    alice_secret = tmp_path / "home" / "alice.secret"
    credential = write_credential(alice_secret, user="alice")
    c = make_cluster(
        zk_hosts=zk.address,
        extra={"zookeeper": {"operators": [digest_id(*credential.split(":", 1))]}},
    )
    started(c)
    xdg = tmp_path / "xdg"
    write(
        xdg / "failoverd" / "failoverctl.yaml",
        f"cluster: {c.cluster}\n"
        "members: [mail1, mail2]\n"
        "zookeeper:\n"
        f"  hosts: {zk.address}\n"
        "  session_timeout: 2s\n"
        "  auth: {scheme: digest}\n"
        "operator:\n"
        "  credential: ../../home/alice.secret\n",  # from the config's directory
    )
    env = clean_env(XDG_CONFIG_HOME=str(xdg))  # no HOME, no USER, no --config
    for args in (["status"], ["history", "--json"], ["maintenance", "on", "--reason", "mine"]):
        out = ctl(*args, env=env)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    entries = json.loads(ctl("history", "--json", env=env).stdout)
    on = next(e for e in entries if e["event"] == "maintenance_on")
    assert on["by"] == "alice" and on["reason"] == "mine", on
    assert ctl("maintenance", "off", env=env).returncode == 0
    wait_for(lambda: ctl("status", env=env).returncode == 0, 10, "healthy again")
    out = ctl("switchover", env=env)
    assert out.returncode == 0 and "mail1 -> mail2" in out.stdout, out.stderr


def test_a_config_the_operator_may_not_read_says_what_to_do(tmp_path: Path) -> None:
    config = write(tmp_path / "failoverd.yaml", "cluster: mail\n", 0o600)
    tmp_path.chmod(0o755)
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *ctl_argv(),
         "-c", str(config), "status"],
        capture_output=True, text=True, env=clean_env(), check=False,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert f"{config}: cannot read: Permission denied" in out.stderr
    assert (
        "as a non-root operator, write /nonexistent/.config/failoverd/failoverctl.yaml"
        in out.stderr
    )
    assert "or pass --config FILE" in out.stderr and "Traceback" not in out.stderr
