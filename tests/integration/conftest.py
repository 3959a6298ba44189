"""Fixtures for integration tests. Each section is self-contained."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from failoverd.config import load_config
from failoverd.resources.build import build_resources
from tests.integration.cluster import Cluster
from tests.support.sshd import Sshd
from tests.support.zookeeper import ZooKeeperServer

# ---------------------------------------------------------------------------
# sshd: a private OpenSSH server on loopback, the target of ssh fencing
# ---------------------------------------------------------------------------


@pytest.fixture
def sshd(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Sshd]:
    """A started sshd with its own host key; prints its log if the test failed."""
    failed_before = request.session.testsfailed
    server = Sshd(tmp_path / "sshd")
    server.start()
    yield server
    server.stop()
    # The call phase's report is logged before teardown, so a failure is counted here.
    if request.session.testsfailed > failed_before:
        print(f"\n--- sshd log ({server.host}:{server.port})\n{server.log()}")


# ---------------------------------------------------------------------------
# cluster: two failoverd daemons on the session's ZooKeeper (tests start them)
# ---------------------------------------------------------------------------


@pytest.fixture
def cluster(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """Stopped at teardown; prints every daemon's log if the test failed."""
    c = Cluster(tmp_path / "c", zk.address)
    yield c
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.dump_logs())


@pytest.fixture
def make_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[type[Cluster]]:
    """Cluster(...) factory for tests that need several or special ones; every one
    made is stopped at teardown, with its logs printed if the test failed."""
    made: list[Cluster] = []

    def factory(**kw: object) -> Cluster:
        c = Cluster(tmp_path / f"c{len(made)}", **kw)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield factory  # type: ignore[misc]
    for c in made:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Cluster]:
    """A fence-self target: mail1's config and its toy service, running at epoch 5
    (no daemon, no ZooKeeper)."""
    c = Cluster(tmp_path / "c", "127.0.0.1:1")
    config = load_config(str(c.nodes["mail1"].config_path))
    env = {"FAILOVERD_CLUSTER": c.cluster, "FAILOVERD_NODE": "mail1", "FAILOVERD_EPOCH": "5"}
    for res in build_resources(config.resources):
        res.start(env)
    yield c
    c.stop()
