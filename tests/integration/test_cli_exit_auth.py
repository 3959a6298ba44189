"""Exit 2 for auth mistakes, said in plain words, from every failoverctl command
that talks to ZooKeeper: a config without auth on servers that enforce SASL, a
login the servers refuse, and an operator whose credential the cluster's ACLs do
not name. Before, each was "UNKNOWN" (exit 3) or a bare NoAuthError (exit 1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import REPO, Cluster, wait_for
from tests.support.access import jaas_server_section, write_credential
from tests.support.ctl import ZK_COMMANDS, args_for, backup_text, ctl, node_yaml, write
from tests.support.zookeeper import ZooKeeperServer, free_port


@pytest.fixture(scope="module")
def sasl_zk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    """A server with the shipped zoo.cfg's authentication lines (SASL enforced)."""
    cfg = (REPO / "deploy/zookeeper/zoo.cfg").read_text().splitlines()
    auth_lines = [x for x in cfg if x.startswith(("enforce.auth.", "authProvider."))]
    server = ZooKeeperServer(
        tmp_path_factory.mktemp("zk-sasl"),
        free_port(),
        extra_config=auth_lines,
        jaas=jaas_server_section({"failoverd": "right-password"}),
    )
    server.start()
    server.wait_serving()
    yield server
    server.stop()


@pytest.mark.parametrize("command", [c for c in ZK_COMMANDS if c != "fix-acl"])
def test_a_config_without_auth_on_sasl_servers_is_exit_2_naming_the_setting(
    command: str, sasl_zk: ZooKeeperServer, tmp_path: Path
) -> None:
    # (fix-acl refuses a config without zookeeper.auth before it connects: exit 1.)
    write(tmp_path / "restore.json", backup_text("mail"))
    config = write(tmp_path / "failoverd.yaml", node_yaml("mail", sasl_zk.address, None))
    out = ctl("-c", str(config), *args_for(command, tmp_path))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert f"ZooKeeper at {sasl_zk.address} requires a SASL login" in out.stderr
    assert f"{config} has no zookeeper.auth" in out.stderr
    assert "zookeeper.auth.scheme: sasl" in out.stderr  # what to do
    assert "UNKNOWN" not in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("command", list(ZK_COMMANDS))
def test_a_login_the_servers_refuse_is_exit_2(
    command: str, sasl_zk: ZooKeeperServer, tmp_path: Path
) -> None:
    write(tmp_path / "restore.json", backup_text("mail"))
    cred = write(tmp_path / "zk.secret", "failoverd:wrong-password\n", 0o600)
    auth = f"  auth: {{scheme: sasl, credential_file: {cred}}}\n"
    text = node_yaml("mail", sasl_zk.address, None).replace("fencing:", auth + "fencing:")
    config = write(tmp_path / "failoverd.yaml", text)
    out = ctl("-c", str(config), *args_for(command, tmp_path))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert f"ZooKeeper at {sasl_zk.address} refused the login with" in out.stderr
    assert f"zookeeper.auth.credential_file {cred}" in out.stderr
    assert "JAAS" in out.stderr and "UNKNOWN" not in out.stderr


def operator_config(c: Cluster, credential: Path) -> str:
    return (
        f"cluster: {c.cluster}\nmembers: [mail1, mail2]\n"
        f"zookeeper:\n  hosts: {c.hosts_for('mail1')}\n"
        f"operator:\n  credential: {credential}\n"
    )


def test_an_operator_the_acls_do_not_name_gets_exit_2_from_every_command(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start("mail1")
    wait_for(lambda: cluster.active(via="mail1"), 20, "mail1 active")
    # bob has a credential, but no node lists his digest in zookeeper.operators.
    bob = tmp_path / "bob.secret"
    write_credential(bob, user="bob")
    config = write(tmp_path / "failoverctl.yaml", operator_config(cluster, bob))
    for command in ("status", "status --json", "history", "maintenance", "switchover",
                    "failover", "backup"):  # fmt: skip
        out = ctl("-c", str(config), *args_for(command, tmp_path))
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert "ZooKeeper refused access" in out.stderr and "NoAuthError" in out.stderr
        assert f"operator.credential {bob}" in out.stderr, out.stderr
        assert "zookeeper.operators" in out.stderr and "failoverctl digest" in out.stderr
