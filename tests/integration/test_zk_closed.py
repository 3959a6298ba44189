"""ZooKeeper closed to made-up identities, on a real ZooKeeper with real daemons.

Digest auth only identifies: any `user:password` "authenticates". So the znode the
clusters live under (zookeeper.root) must not let just anyone create a cluster
node there (a squatted cluster node made its daemon exit 2), the daemon must
refuse to live under a parent that does, and with SASL (deploy/zookeeper/zoo.cfg)
an identity the server does not know cannot even open a session.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from tests.integration.cluster import REPO, Cluster, wait_for
from tests.support.access import digest_auth, jaas_server_section, write_credential
from tests.support.zookeeper import ZooKeeperServer, free_port


def fresh_root() -> str:
    """A zookeeper.root nobody has used on the shared test server."""
    return f"/fo-{uuid.uuid4().hex[:8]}"


def client(hosts: str, **kw: object) -> KazooClient:
    c = KazooClient(hosts=hosts, connection_retry={"max_tries": 1}, **kw)  # type: ignore[arg-type]
    c.start(timeout=5)
    return c


def no_session(hosts: str, **kw: object) -> bool:
    """True when a client with these credentials cannot open a session at all."""
    c = KazooClient(hosts=hosts, connection_retry={"max_tries": 1}, **kw)  # type: ignore[arg-type]
    try:
        c.start(timeout=5)
        c.get("/")
    except Exception:  # noqa: BLE001 - a timeout or a closed connection: no session
        return True
    finally:
        c.stop()
        c.close()
    return False


def exit_code(c: Cluster, node: str, timeout: float) -> int | None:
    proc = c.nodes[node].proc
    assert proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    return proc.poll()


def test_a_made_up_identity_cannot_create_a_cluster_under_the_root(
    zk: ZooKeeperServer, make_cluster
) -> None:
    root = fresh_root()
    c = make_cluster(zk_hosts=zk.address, extra={"zookeeper": {"root": root}})
    c.start()
    assert c.wait_active(timeout=20) in ("mail1", "mail2")
    mallory = client(zk.address, auth_data=[("digest", "mallory:made-up")])
    try:
        # Another cluster that has not started yet, and a sibling of this one.
        for name in ("mailb", f"{c.cluster}-x"):
            with pytest.raises(NoAuthError):
                mallory.create(f"{root}/{name}", b"", acl=OPEN_ACL_UNSAFE)
    finally:
        mallory.stop()
        mallory.close()
    nodes = client(zk.address, auth_data=digest_auth(c.credential_file))
    try:
        acls, _ = nodes.get_acls(root)
    finally:
        nodes.stop()
        nodes.close()
    assert [a.id.scheme for a in acls] == ["digest"], acls
    assert not any(a.id.scheme == "world" for a in acls)


def test_the_daemon_refuses_a_root_whose_acl_lets_anyone_create_under_it(
    zk: ZooKeeperServer, make_cluster
) -> None:
    root = fresh_root()
    c = make_cluster(zk_hosts=zk.address, extra={"zookeeper": {"root": root}})
    # What failoverd itself used to leave: the root open to everyone.
    nodes = client(zk.address, auth_data=digest_auth(c.credential_file))
    try:
        nodes.create(root, b"", acl=OPEN_ACL_UNSAFE)
    finally:
        nodes.stop()
        nodes.close()
    c.start("mail1")
    assert exit_code(c, "mail1", 20) == 2, "mail1 ran under a world-writable root"
    refused = [e for e in c.nodes["mail1"].events() if e.get("event") == "zookeeper_parent_open"]
    assert refused, c.nodes["mail1"].log_path.read_text()[-2000:]
    assert refused[0]["path"] == root and refused[0]["acl"] == "world:anyone:rwcda"
    assert not any(e.get("event") == "promoted" for e in c.nodes["mail1"].events())
    # The repair the hint names: then it runs.
    fixed = c.ctl("fix-acl", via="mail1")
    assert fixed.returncode == 0, fixed.stderr
    assert f"{root}: digest:failoverd:" in fixed.stdout
    c.start()
    assert c.wait_active(timeout=20) == "mail1"


def test_a_root_directly_under_slash_is_refused(zk: ZooKeeperServer, make_cluster) -> None:
    c = make_cluster(zk_hosts=zk.address, extra={"zookeeper": {"root": "/"}})
    c.start("mail1")
    assert exit_code(c, "mail1", 20) == 2, "mail1 ran with its cluster node directly under /"
    assert "zookeeper.root: " in c.nodes["mail1"].log_path.read_text()


# --- SASL: only identities the server knows ------------------------------------------


def sasl_server(workdir: Path, users: dict[str, str]) -> ZooKeeperServer:
    """A server with the shipped zoo.cfg's authentication lines and a JAAS file."""
    cfg = (REPO / "deploy/zookeeper/zoo.cfg").read_text().splitlines()
    auth_lines = [x for x in cfg if x.startswith(("enforce.auth.", "authProvider."))]
    assert "enforce.auth.schemes=sasl" in auth_lines
    server = ZooKeeperServer(
        workdir, free_port(), extra_config=auth_lines, jaas=jaas_server_section(users)
    )
    server.start()
    server.wait_serving()
    return server


def sasl(credential: str) -> dict[str, object]:
    user, _, password = credential.partition(":")
    return {"sasl_options": {"mechanism": "DIGEST-MD5", "username": user, "password": password}}


# kazoo's own connection thread dies on a refused SASL login (failoverd's client
# retries instead: zk/client.py); the bare test clients here let it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_with_sasl_enforced_only_known_users_get_a_session(tmp_path: Path, make_cluster) -> None:
    node_cred = write_credential(tmp_path / "nodes.secret", user="failoverd")
    alice_file = tmp_path / "alice.secret"
    alice = write_credential(alice_file, user="alice")
    users = dict(x.split(":", 1) for x in (node_cred, alice))
    server = sasl_server(tmp_path / "zk-sasl", users)
    try:
        c = make_cluster(
            zk_hosts=server.address,
            extra={
                "zookeeper": {
                    "auth": {"scheme": "sasl", "credential_file": str(tmp_path / "nodes.secret")},
                    "operators": ["alice"],
                }
            },
        )
        c.start()
        assert c.wait_active(timeout=20) == "mail1"
        wait_for(lambda: all(m["connected"] for m in c.status()["members"]), 10, "both")
        base = f"/failoverd/{c.cluster}"
        # The operator, by name: reads, writes control, nothing else.
        op = client(server.address, **sasl(alice))
        try:
            op.get(f"{base}/active")
            data, stat = op.get(f"{base}/control")
            op.set(f"{base}/control", data, version=stat.version)
            with pytest.raises(NoAuthError):
                op.create("/failoverd/other", b"")
            with pytest.raises(NoAuthError):
                op.delete(f"{base}/lock")
        finally:
            op.stop()
            op.close()
        on = c.ctl("--credential", str(alice_file), "maintenance", "on", "--reason", "sasl")
        assert on.returncode == 0, on.stderr
        # What deploy/zookeeper/README.md has the operator check: the root's ACL
        # (fix-acl prints it), and that a made-up credential gets no session.
        fixed = c.ctl("fix-acl", via="mail1")
        assert fixed.returncode == 0, fixed.stderr
        assert fixed.stdout.splitlines()[0] == "/failoverd: sasl:failoverd:rwcda, sasl:alice:r"
        made_up = tmp_path / "made-up.secret"
        made_up.write_text("mallory:made-up\n")
        made_up.chmod(0o600)
        refused = c.ctl("--credential", str(made_up), "status")
        assert refused.returncode == 2, refused.stderr  # an auth mistake, not "unknown"
        assert f"refused the login with --credential {made_up}" in refused.stderr
        assert "zookeeper_auth_refused" in refused.stderr and "user=mallory" in refused.stderr
        # Unknown users and wrong passwords get no session at all; digest neither.
        for creds in (
            sasl("mallory:made-up"),
            sasl("alice:wrong"),
            {"auth_data": [("digest", "mallory:made-up")]},
        ):
            assert no_session(server.address, **creds), creds
        c.stop()
    finally:
        server.stop()
