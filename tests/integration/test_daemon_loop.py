"""The daemon's loop driven in-process against a real ZooKeeper and a real resource
(the toy service), so a test can inject a fault into one step and watch what the
loop does next. Everything but the injected fault is the real thing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from kazoo.client import KazooClient

from failoverd.config import load_config
from failoverd.fencing.base import FenceOutcome, FenceRequest
from failoverd.node.daemon import Daemon
from failoverd.node.decision import Role
from failoverd.zk.znodes import Breadcrumb, encode, now_iso
from tests.integration.cluster import Cluster, wait_for
from tests.support.access import digest_auth
from tests.support.zookeeper import ZooKeeperServer


class Loop:
    """One daemon, its loop turned by the test."""

    def __init__(self, cluster: Cluster, name: str):
        self.cluster = cluster
        self.d = Daemon(load_config(str(cluster.nodes[name].config_path)))
        d = self.d
        d.health.start()
        d.coord.start()
        d.keeper.start()
        d.set_role(Role.STANDBY, "started")

    def turn(self) -> None:
        self.d._wait_for_events()
        self.d.cycle()

    def until(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.turn()
            if predicate():
                return
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def close(self) -> None:
        self.d._shutdown()


@pytest.fixture
def loops(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[tuple[Cluster, Loop]] = []

    def factory(
        zk: ZooKeeperServer, edit: Callable[[dict[str, Any]], None] | None = None, **kw: Any
    ) -> tuple[Cluster, Loop]:
        c = Cluster(tmp_path / f"c{len(made)}", zk_hosts=zk.address, **kw)
        if edit is not None:
            c.edit_config("mail1", edit)
        loop = Loop(c, "mail1")
        made.append((c, loop))
        return c, loop

    yield factory
    for c, loop in made:
        loop.close()
        c.stop()


def test_active_whose_steps_fail_still_demotes_when_its_lease_runs_out(
    zk: ZooKeeperServer, loops: Any
) -> None:
    """A poisoned znode made every step() raise before decide(); a
    lease-less active then never demoted and its service kept running."""
    c, loop = loops(zk)
    d = loop.d
    loop.until(lambda: d.state.role is Role.ACTIVE, 20, "mail1 active")
    wait_for(lambda: [i for i in c.serving() if i[0] == "mail1"], 10, "mail1's service up")

    def poisoned(_timeout: float) -> Any:
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")

    d.coord.read_control = poisoned  # type: ignore[method-assign]
    d.state.control_read_at = float("-inf")
    loop.turn()
    assert d.state.role is Role.ACTIVE  # a failing step alone is no reason to demote
    d.keeper.stop()  # no more renewals: the lease runs out within T - margin
    loop.until(lambda: d.state.role is Role.STANDBY, 3 * c.session_timeout, "mail1 to demote")
    assert not d.lease.valid()
    serving = [i for i in c.serving() if i[0] == "mail1"]
    assert serving and all(down < time.time() for _, _, down in serving)
    assert not [e for e in c.service_events() if e["event"] == "up"][1:], "restarted"


def test_lease_wait_counts_from_the_lock_seen_free_in_the_current_session(
    zk: ZooKeeperServer, loops: Any, tmp_path: Path
) -> None:
    """Item 7: a lock seen free in an old session must not shorten lease-wait."""
    sick = tmp_path / "sick"
    check = {"type": "command", "argv": ["test", "!", "-e", str(sick)], "timeout": "1s"}
    sick.touch()  # unhealthy: sees the free lock but does not contend yet
    c, loop = loops(zk, health_checks=[check])
    d = loop.d
    loop.until(lambda: d.state.lock_free_since is not None, 10, "mail1 to see the lock free")
    # The previous active was mail2 and did not hand over: mail1 will have to fence it.
    zkc = KazooClient(hosts=zk.address, auth_data=digest_auth(c.credential_file))
    zkc.start()
    try:
        zkc.set(f"/failoverd/{c.cluster}/active", encode(Breadcrumb("mail2", 1, now_iso(), False)))
    finally:
        zkc.stop()
        zkc.close()

    # A new ZooKeeper session (the old one expired while we were cut off): what we
    # saw of the lock before says nothing about who held it in between.
    d.coord.client.stop()
    reconnected = time.monotonic()
    d.coord.client.start()
    loop.until(lambda: d.session == d.coord.session_id, 10, "mail1 in its new session")

    requests: list[FenceRequest] = []

    def fence(req: FenceRequest) -> tuple[bool, list[FenceOutcome]]:
        requests.append(req)
        return True, [FenceOutcome("lease-wait", True, "recorded by the test", 0.0)]

    d.fence_chain.fence = fence  # type: ignore[method-assign]
    sick.unlink()
    loop.until(lambda: requests, 15, "mail1 to fence mail2")
    since = requests[0].lock_free_since
    assert since is None or since >= reconnected, (since, reconnected)


@pytest.mark.parametrize(
    ("method", "role"),
    [
        # A poisoned history entry used to leave the node in FENCING forever.
        ("highest_known_epoch", "fencing"),
        # Anything unforeseen after the lock was won, here in the breadcrumb write.
        ("write_breadcrumb", "promoting"),
    ],
)
def test_any_exception_mid_takeover_ends_in_standby_with_the_lock_released(
    zk: ZooKeeperServer, loops: Any, method: str, role: str
) -> None:
    c, loop = loops(zk)
    d = loop.d

    def poisoned(*_a: object, **_kw: object) -> Any:
        raise RecursionError("maximum recursion depth exceeded while decoding JSON")

    setattr(d.coord, method, poisoned)
    with structlog.testing.capture_logs() as logs:
        loop.until(lambda: any(e["event"] == "transition_failed" for e in logs), 10, "the failure")
    failed = next(e for e in logs if e["event"] == "transition_failed")
    assert failed["log_level"] == "critical" and failed["role"] == role
    assert d.state.role is Role.STANDBY and not d.lease.valid()
    assert d.state.backoff_until > time.monotonic()  # backs off before it tries again
    assert c.status()["lease_holder"] is None
    assert not c.serving()


def test_a_takeover_whose_start_failed_while_nobody_serves_is_retried_after_about_T(
    zk: ZooKeeperServer, loops: Any, tmp_path: Path
) -> None:
    """A start that fails once (a store not mounted yet, a state dir briefly
    unwritable) used to keep the node out for the whole flap.backoff while nobody
    served. Nobody serves here (a fresh cluster, mail2 never started): mail1 retries
    after T (2 s), not after the 30 s back-off, and serves."""
    once = tmp_path / "fail-next-start"
    once.touch()
    fails_once = {
        "type": "command",
        "start": ["sh", "-c", 'if [ -e "$0" ]; then rm -f "$0"; exit 1; fi', str(once)],
        "stop": ["true"],
        "timeout": "5s",
    }

    def failing_first(cfg: dict[str, Any]) -> None:
        cfg["resources"].insert(0, fails_once)

    c, loop = loops(zk, edit=failing_first, extra={"flap": {"backoff": "30s"}})
    d = loop.d
    with structlog.testing.capture_logs() as logs:
        loop.until(lambda: not once.exists(), 20, "mail1's first start")
        loop.until(lambda: d.state.role is Role.STANDBY, 10, "mail1 back to standby")
        failed_at = time.monotonic()
        loop.until(lambda: d.state.role is Role.ACTIVE, 10, "mail1 active again")
    waited = time.monotonic() - failed_at
    assert c.session_timeout <= waited + 0.2 and waited < c.session_timeout + 3.0, waited
    assert [e["code"] for e in logs if e["event"] == "demoted"] == ["start_failed"]
    assert any(
        e["event"] == "decided" and "retrying a failed takeover early" in e["reason"] for e in logs
    )
    wait_for(lambda: [i for i in c.serving() if i[0] == "mail1"], 10, "mail1's service up")
