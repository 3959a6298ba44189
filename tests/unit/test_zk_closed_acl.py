"""Who may create under the clusters' root, and the sasl identities (pure logic;
tests/integration/test_zk_closed.py runs the same against real ZooKeeper)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kazoo.security import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id, Permissions

from failoverd.config import ConfigError, load_config
from failoverd.zk import acl as zk_acl
from failoverd.zk.client import auth_kwargs

YAML = """\
cluster: mail-east
node: {{name: mail1, address: 10.0.0.11}}
peers: {{mail2: {{address: 10.0.0.12}}}}
zookeeper:
  hosts: zk1:2181
{zookeeper}
fencing:
  - {{type: command, argv: [/usr/local/sbin/pdu-off, "{{node}}"]}}
"""


def load(tmp_path: Path, zookeeper: str):  # type: ignore[no-untyped-def]
    secret = tmp_path / "zk.secret"
    secret.write_text("failoverd:s3cret\n")
    os.chmod(secret, 0o600)
    path = tmp_path / "failoverd.yaml"
    path.write_text(YAML.format(zookeeper=zookeeper.replace("SECRET", str(secret))))
    return load_config(str(path))


def problems(tmp_path: Path, zookeeper: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, zookeeper)
    return e.value.problems


def test_sasl_identities_are_user_names(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "  auth: {scheme: sasl, credential_file: SECRET}\n  operators: [alice, bob]",
    )
    assert c.zookeeper.auth is not None and c.zookeeper.auth.scheme == "sasl"
    assert zk_acl.root_acl(c) == [
        ACL(Permissions.ALL, Id("sasl", "failoverd")),
        ACL(Permissions.READ, Id("sasl", "alice")),
        ACL(Permissions.READ, Id("sasl", "bob")),
    ]
    rw = Permissions.READ | Permissions.WRITE
    assert ACL(rw, Id("sasl", "alice")) in (zk_acl.control_acl(c) or [])
    assert auth_kwargs("sasl", "failoverd:s3cret") == {
        "sasl_options": {"mechanism": "DIGEST-MD5", "username": "failoverd", "password": "s3cret"}
    }


def test_digest_stays_the_default_scheme(tmp_path: Path) -> None:
    c = load(tmp_path, "  auth: {credential_file: SECRET}")
    assert c.zookeeper.auth is not None and c.zookeeper.auth.scheme == "digest"
    (node,) = zk_acl.root_acl(c) or []
    assert node.id == Id("digest", zk_acl.digest_id("failoverd", "s3cret"))
    assert auth_kwargs("digest", "failoverd:s3cret") == {
        "auth_data": [("digest", "failoverd:s3cret")]
    }


def test_sasl_operators_must_be_user_names(tmp_path: Path) -> None:
    digest = zk_acl.digest_id("alice", "pw")
    (problem,) = problems(
        tmp_path, f"  auth: {{scheme: sasl, credential_file: SECRET}}\n  operators: ['{digest}']"
    )
    assert "zookeeper.operators[0]: expected a user name of the servers' JAAS file" in problem


def test_a_root_of_slash_is_refused(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "  root: /\n  auth: {scheme: sasl, credential_file: SECRET}")
    assert "zookeeper.root: must not be /" in problem


def test_parents_are_everything_between_slash_and_the_cluster_node() -> None:
    assert zk_acl.ancestors("/failoverd/mail-east") == ["/failoverd"]
    assert zk_acl.ancestors("/a/b/mail-east") == ["/a/b", "/a"]


def test_world_may_read_but_never_create_write_delete_or_administer() -> None:
    assert zk_acl.open_to_anyone(OPEN_ACL_UNSAFE)
    assert not zk_acl.open_to_anyone(READ_ACL_UNSAFE)
    for perm in (Permissions.CREATE, Permissions.WRITE, Permissions.DELETE, Permissions.ADMIN):
        assert zk_acl.open_to_anyone([ACL(perm, Id("world", "anyone"))])
    assert not zk_acl.open_to_anyone([ACL(Permissions.ALL, Id("sasl", "failoverd"))])


def test_fix_acl_closes_a_parent_but_keeps_other_clusters_nodes(tmp_path: Path) -> None:
    c = load(tmp_path, "  auth: {scheme: sasl, credential_file: SECRET}\n  operators: [alice]")
    other = ACL(Permissions.ALL, Id("sasl", "nodes-west"))
    alice_write = ACL(Permissions.WRITE, Id("sasl", "alice"))
    closed = zk_acl.closed_root_acl(c, [*OPEN_ACL_UNSAFE, other, alice_write])
    assert not zk_acl.open_to_anyone(closed)
    assert set(closed) == {
        other,
        ACL(Permissions.READ | Permissions.WRITE, Id("sasl", "alice")),
        ACL(Permissions.ALL, Id("sasl", "failoverd")),
    }
