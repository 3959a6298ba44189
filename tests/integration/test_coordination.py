"""Coordinator against a real ZooKeeper: lease bookkeeping, ownership, garbage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from structlog.testing import capture_logs

from failoverd.config import load_config
from failoverd.zk.coordinator import Coordinator
from failoverd.zk.lease import LocalLease
from tests.integration.cluster import Cluster
from tests.support.zookeeper import ZooKeeperServer


@pytest.fixture
def config_path(zk: ZooKeeperServer, tmp_path: Path) -> Path:
    c = Cluster(tmp_path / "c", zk.address, cluster=f"k{uuid.uuid4().hex[:8]}")
    return c.nodes["mail1"].config_path


@pytest.fixture
def coord(config_path: Path) -> Iterator[Coordinator]:
    c = Coordinator(load_config(str(config_path)))
    c.start(timeout=5)
    c.ensure_tree(2)
    yield c
    c.close()


@pytest.fixture
def raw(zk: ZooKeeperServer, config_path: Path) -> Iterator[KazooClient]:
    """Another client with the nodes' credential (the tree is closed to others)."""
    auth = load_config(str(config_path)).zookeeper.auth
    assert auth is not None
    client = KazooClient(hosts=zk.address, auth_data=[("digest", auth.credential)])
    client.start()
    yield client
    client.stop()
    client.close()


def test_lease_follows_a_shorter_session_timeout_granted_by_the_server(config_path: Path) -> None:
    config = load_config(str(config_path))
    # The test server's maxSessionTimeout is 30 s: ask for more.
    config = replace(
        config, zookeeper=replace(config.zookeeper, session_timeout=60.0, lease_margin=15.0)
    )
    coord = Coordinator(config)
    coord.start(timeout=5)
    try:
        coord.ensure_tree(2)
        lease = LocalLease(60.0, 15.0)
        assert coord.try_acquire(lease, 2)
        assert coord.granted_timeout() == 30.0
        assert lease.session_timeout == 30.0 and lease.margin == 7.5
        assert lease.remaining() <= 22.5
    finally:
        coord.close()


def test_lease_is_revoked_when_the_lock_is_gone_or_owned_by_another_session(
    coord: Coordinator, raw: KazooClient
) -> None:
    lease = LocalLease(2.0, 0.5)
    assert coord.try_acquire(lease, 2)
    assert coord.check_lease(lease, 2) is True
    raw.delete(coord.lock_path)  # e.g. an operator's mistake
    raw.create(coord.lock_path, b"{}", ephemeral=True)
    assert coord.check_lease(lease, 2) is False
    assert not lease.valid()


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_an_answer_after_a_send_gap_renews_at_most_t_past_the_previous_send(
    coord: Coordinator,
) -> None:
    # An answered round trip renews the lease from min(t_send, t_prev + margin):
    # until min(t_send + T - margin, t_prev + T). The lease's clock stamps the sends.
    clock = FakeClock(1000.0)
    lease = LocalLease(2.0, 0.5, clock)
    assert coord.try_acquire(lease, 2)  # the grant's own request: sent at 1000.0
    T, margin = lease.session_timeout, lease.margin
    clock.t = 1000.0 + 2 * margin  # the next round trip goes out 2 margins later
    with capture_logs() as logs:
        assert coord.check_lease(lease, 2) is True
    # min(1000 + 2m + T - m, 1000 + m + T - m) = 1000 + T, not 1000 + T + m.
    expires = clock.t + lease.remaining()
    assert expires == pytest.approx(1000.0 + T), f"renewed until {expires}, T={T} m={margin}"
    gaps = [e for e in logs if e["event"] == "lease_send_gap"]
    assert len(gaps) == 1, logs
    assert gaps[0]["gap"] == pytest.approx(2 * margin)
    assert gaps[0]["margin"] == pytest.approx(margin)

    # Back on schedule (sends less than a margin apart): t_send + T - margin as ever.
    clock.t += margin / 2
    with capture_logs() as logs:
        assert coord.check_lease(lease, 2) is True
    assert clock.t + lease.remaining() == pytest.approx(clock.t + T - margin)
    assert not [e for e in logs if e["event"] == "lease_send_gap"]


def test_release_never_deletes_a_lock_held_by_another_session(
    coord: Coordinator, raw: KazooClient
) -> None:
    raw.create(coord.lock_path, b"{}", ephemeral=True)
    lease = LocalLease(2.0, 0.5)
    lease.grant(coord.session_id or 0, 0.0)
    assert coord.release_lock(lease, 2) is False
    assert raw.exists(coord.lock_path) is not None


def test_garbage_control_reads_as_maintenance_and_garbage_lock_as_unreadable_holder(
    coord: Coordinator, raw: KazooClient
) -> None:
    raw.set(coord.control_path, b'{"v": 1, "maintenance": "nope"}')
    control, _ = coord.read_control(2)
    assert control.maintenance is True
    raw.create(coord.lock_path, b"\xde\xad", ephemeral=True)
    holder, owner, _ = coord.read_lock(2)
    assert holder == "" and owner is not None


def test_breadcrumb_cas_fails_without_our_lock(coord: Coordinator, raw: KazooClient) -> None:
    from failoverd.zk.coordinator import CoordinationError
    from failoverd.zk.znodes import Breadcrumb

    crumb, readable, version = coord.read_breadcrumb(2)
    assert readable and crumb is not None and crumb.node is None  # fresh cluster
    with pytest.raises(CoordinationError):
        coord.write_breadcrumb(Breadcrumb("mail1", 1, "t", False), version, 2)
    raw.create(coord.lock_path, b"{}", ephemeral=True)  # somebody else's lock
    lease = LocalLease(2.0, 0.5)
    assert not coord.try_acquire(lease, 2)
    with pytest.raises(CoordinationError, match="not ours"):
        coord.write_breadcrumb(Breadcrumb("mail1", 1, "t", False), version, 2)
    assert coord.read_breadcrumb(2)[0] == crumb
