"""Fencing after losing the lease : the chain checks the
fencer's own lease before each method, lease-wait stops waiting when it goes, and
fence-self refuses a fence from an epoch older than the one this node serves. And
lease-wait waits out only a target that published, in its member status in ZooKeeper,
a watchdog device armed with a timeout no longer than the one it waits out."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from failoverd.config import (
    CommandFencerConfig,
    Config,
    LeaseWaitFencerConfig,
    NodeConfig,
    WatchdogConfig,
    ZooKeeperConfig,
    load_config,
)
from failoverd.fencing.base import FenceRequest, FenceTarget
from failoverd.fencing.chain import build_fence_chain
from failoverd.fencing.lease_wait import PublishedWatchdogs
from failoverd.fencing.marker import FenceMarker
from failoverd.zk.coordinator import Coordinator
from failoverd.zk.lease import LocalLease
from failoverd.zk.znodes import MemberStatus, WatchdogStatus, encode, now_iso
from tests.integration.cluster import REPO, Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer

PY = sys.executable
TARGET = FenceTarget("mail2", "127.0.0.1")


def chain_config(*fencing: object, watchdog: WatchdogConfig | None = None) -> Config:
    return Config(
        path="test.yaml",
        cluster="test",
        node=NodeConfig("mail1", "127.0.0.1"),
        peers=(),
        zookeeper=ZooKeeperConfig("127.0.0.1:1", session_timeout=2.0, lease_margin=0.5),
        fencing=fencing,  # type: ignore[arg-type]
        watchdog=watchdog,
    )


def request(lease: LocalLease) -> FenceRequest:
    env = {"FAILOVERD_CLUSTER": "test", "FAILOVERD_NODE": "mail1", "FAILOVERD_EPOCH": "7"}
    return FenceRequest(TARGET, 7, env, lock_free_since=None, lease_valid=lease.valid)


def lease_for(seconds: float) -> LocalLease:
    """A real local lease, granted now, that runs out after `seconds`."""
    lease = LocalLease(seconds + 0.1, 0.1)
    lease.grant(1, lease.clock())
    return lease


def test_chain_never_starts_a_method_once_the_fencers_lease_ran_out(tmp_path: Path) -> None:
    ran = tmp_path / "second-method-ran"
    slow_failure = CommandFencerConfig(argv=("sh", "-c", "sleep 0.6; exit 1"), timeout=5.0)
    second = CommandFencerConfig(argv=("touch", str(ran)), timeout=5.0)
    chain = build_fence_chain(chain_config(slow_failure, second))
    lease = lease_for(0.3)  # runs out while the first method is still failing
    ok, outcomes = chain.fence(request(lease))
    assert not ok
    assert [o.method for o in outcomes] == ["command"]  # the first one only
    assert not ran.exists(), "a fencer without a lease started its next method"


def test_chain_runs_no_method_at_all_without_a_lease(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    chain = build_fence_chain(
        chain_config(CommandFencerConfig(argv=("touch", str(ran)), timeout=5.0))
    )
    lease = lease_for(0.3)
    lease.revoke()
    assert chain.fence(request(lease)) == (False, [])
    assert not ran.exists()


def test_chain_with_a_valid_lease_still_falls_through_to_the_next_method(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    failing = CommandFencerConfig(argv=("false",), timeout=5.0)
    second = CommandFencerConfig(argv=("touch", str(ran)), timeout=5.0)
    ok, outcomes = build_fence_chain(chain_config(failing, second)).fence(request(lease_for(30)))
    assert ok and [o.ok for o in outcomes] == [False, True] and ran.exists()


def armed_target() -> PublishedWatchdogs:
    """What a fencer remembers of a target that published an armed 10 s device."""
    published = PublishedWatchdogs()
    status = MemberStatus("mail2", "active", True, 6, "x", "127.0.0.1", False, "r", "t")
    published.saw({"mail2": replace(status, watchdog=WatchdogStatus(True, 10.0))})
    return published


def test_lease_wait_stops_waiting_when_the_fencers_lease_runs_out() -> None:
    watchdog = WatchdogConfig(device="/dev/watchdog", timeout=10.0)
    chain = build_fence_chain(
        chain_config(LeaseWaitFencerConfig(), watchdog=watchdog), armed_target()
    )
    t0 = time.monotonic()
    ok, outcomes = chain.fence(request(lease_for(0.3)))  # would wait 2 + 10 + 0.5 s
    assert not ok
    assert outcomes[0].reason == "stopped waiting: this node's own lease ran out"
    assert time.monotonic() - t0 < 1.0


# ---------------------------------------------------------------------------
# lease-wait trusts only a watchdog device the target published armed
# ---------------------------------------------------------------------------

ASSUMED = 10.0  # the fencer's watchdog.timeout: it waits 2 + 10 + 0.5 s
NO_WAIT = 12.4  # how long ago the lock was seen gone: a wait would end within 0.1 s


class Pair:
    """mail1 (the fencer) and mail2 (the target) with a session each on a real
    ZooKeeper; the fencer remembers what it read of the members, as its daemon does."""

    def __init__(self, zk: ZooKeeperServer, root: Path):
        self.cluster = Cluster(root, zk.address)
        self.coords = {n: self._coord(n) for n in ("mail1", "mail2")}
        self.published = PublishedWatchdogs()

    def _coord(self, name: str) -> Coordinator:
        coord = Coordinator(load_config(str(self.cluster.nodes[name].config_path)))
        coord.start(timeout=5)
        coord.ensure_tree(2)
        return coord

    def publish(self, watchdog: WatchdogStatus | None, drop_field: bool = False) -> None:
        status = MemberStatus(
            "mail2", "active", True, 6, "x", "127.0.0.1", False, "promoted", now_iso(), 1,
            watchdog=watchdog,
        )  # fmt: skip
        if not drop_field:
            self.coords["mail2"].write_member(status, 2)
            return
        # What a failoverd from before the field writes: no `watchdog` at all.
        data = json.loads(encode(status))
        del data["watchdog"]
        self.write_raw(json.dumps(data).encode())

    def write_raw(self, data: bytes) -> None:
        target = self.coords["mail2"]
        target.client.create(f"{target.members_path}/mail2", data, ephemeral=True)

    def read(self) -> None:
        self.published.saw(self.coords["mail1"].read_members(2))

    def target_dies(self) -> None:
        """mail2's session ends: its ephemeral member status goes with it."""
        self.coords["mail2"].close()
        self.read()
        assert "mail2" not in self.coords["mail1"].read_members(2)

    def close(self) -> None:
        for coord in self.coords.values():
            coord.close()


@pytest.fixture
def pair(zk: ZooKeeperServer, tmp_path: Path) -> Iterator[Pair]:
    p = Pair(zk, tmp_path / "c")
    yield p
    p.close()


def lease_wait_then(ran: Path, published: PublishedWatchdogs) -> tuple[bool, list[object]]:
    """lease-wait, then a command that leaves a file: (ok, outcomes) of the chain."""
    watchdog = WatchdogConfig(device="/dev/watchdog", timeout=ASSUMED)
    fallback = CommandFencerConfig(argv=("touch", str(ran)), timeout=5.0)
    chain = build_fence_chain(
        chain_config(LeaseWaitFencerConfig(), fallback, watchdog=watchdog), published
    )
    req = replace(request(lease_for(30)), lock_free_since=time.monotonic() - NO_WAIT)
    return chain.fence(req)  # type: ignore[return-value]


REFUSED = {
    "not-armed": (
        WatchdogStatus(False, None, "watchdog device /dev/watchdog0 not armed: cannot open"),
        "refused: mail2 published no armed watchdog device "
        "(watchdog device /dev/watchdog0 not armed: cannot open)",
    ),
    "no-device": (
        WatchdogStatus(False, None, "no watchdog device configured"),
        "refused: mail2 published no armed watchdog device (no watchdog device configured)",
    ),
    "longer": (
        WatchdogStatus(True, 30.0),
        "refused: mail2's watchdog timeout (30s) is longer than the watchdog.timeout (10s) "
        "this node waits out",
    ),
    "unknown-timeout": (
        WatchdogStatus(True, None),
        "refused: mail2's watchdog timeout (unknown) is longer than the watchdog.timeout "
        "(10s) this node waits out",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_lease_wait_refuses_a_target_that_did_not_publish_an_armed_device(
    pair: Pair, tmp_path: Path, case: str
) -> None:
    published, reason = REFUSED[case]
    pair.publish(published)
    pair.read()
    pair.target_dies()  # the fencer remembers what mail2 said while it lived
    ran = tmp_path / "ran"
    ok, outcomes = lease_wait_then(ran, pair.published)
    first = outcomes[0]
    assert (first.method, first.ok, first.reason) == ("lease-wait", False, reason)  # type: ignore[attr-defined]
    assert ok and ran.exists(), "the chain did not fall through to the next method"


def test_lease_wait_refuses_a_target_whose_status_is_old_unreadable_or_never_seen(
    pair: Pair, tmp_path: Path
) -> None:
    nothing = "nothing says a watchdog device resets it"
    # Never seen since this node started.
    ok, outcomes = lease_wait_then(tmp_path / "ran0", pair.published)
    expected = f"refused: mail2 published no member status since this node started: {nothing}"
    assert outcomes[0].reason == expected  # type: ignore[attr-defined]
    # Written by a failoverd from before the field.
    pair.publish(WatchdogStatus(True, 10.0), drop_field=True)
    pair.read()
    ok, outcomes = lease_wait_then(tmp_path / "ran1", pair.published)
    expected = (
        f"refused: mail2 runs a failoverd that does not publish its watchdog device: {nothing}"
    )
    assert outcomes[0].reason == expected and ok  # type: ignore[attr-defined]
    # Unreadable: replaces what was known before.
    pair.coords["mail2"].client.delete(f"{pair.coords['mail2'].members_path}/mail2")
    pair.write_raw(b"\x00garbage")
    pair.read()
    ok, outcomes = lease_wait_then(tmp_path / "ran2", pair.published)
    assert outcomes[0].reason == f"refused: mail2's member status was unreadable: {nothing}"  # type: ignore[attr-defined]
    assert ok and (tmp_path / "ran2").exists()


@pytest.mark.parametrize("timeout", [10.0, 8.0])
def test_lease_wait_waits_out_a_target_that_published_an_armed_device(
    pair: Pair, tmp_path: Path, timeout: float
) -> None:
    pair.publish(WatchdogStatus(True, timeout))
    pair.read()
    pair.target_dies()
    ran = tmp_path / "ran"
    watchdog = WatchdogConfig(device="/dev/watchdog", timeout=ASSUMED)
    chain = build_fence_chain(
        chain_config(LeaseWaitFencerConfig(), watchdog=watchdog), pair.published
    )
    # The wait is what it was: session_timeout + the fencer's watchdog.timeout + margin,
    # from when the lock was seen gone (12 s ago: 0.5 s left).
    req = replace(request(lease_for(30)), lock_free_since=time.monotonic() - 12.0)
    t0 = time.monotonic()
    ok, outcomes = chain.fence(req)
    assert ok and [(o.method, o.ok) for o in outcomes] == [("lease-wait", True)]
    assert outcomes[0].reason == "waited out 12.5s since lock seen gone"
    assert 0.4 <= time.monotonic() - t0 < 2.0
    assert not ran.exists()
    (checked,) = chain.check(TARGET)
    assert checked.result == "OK" and checked.reason.endswith("; would wait 12.5s")


# ---------------------------------------------------------------------------
# fence-self against the active record
# ---------------------------------------------------------------------------


def fence_self(c: Cluster, epoch: int) -> subprocess.CompletedProcess[str]:
    cfg = str(c.nodes["mail1"].config_path)
    return subprocess.run(
        [PY, "-m", "failoverd.main", "-c", cfg, "fence-self", "--epoch", str(epoch)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def state_marker(c: Cluster) -> FenceMarker:
    return FenceMarker(load_config(str(c.nodes["mail1"].config_path)).node.state_dir)


def service_up(c: Cluster) -> bool:
    """mail1's service is running now (its last recorded event is 'up')."""
    events = sorted(
        (e for e in c.service_events() if e["node"] == "mail1"),
        key=lambda e: float(e["t"]),  # type: ignore[arg-type]
    )
    return bool(events) and events[-1]["event"] == "up"


def test_fence_self_refuses_a_fence_older_than_the_epoch_this_node_serves(
    target: Cluster,
) -> None:
    marker = state_marker(target)
    marker.record_active(5)
    # A fencer that would take epoch 5 (or 4) fences "up to 4" (or 3): stale.
    for stale in (4, 3):
        res = fence_self(target, stale)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "REFUSED: this node is active at epoch 5" in res.stdout
        assert "fence_self_refused" in res.stdout + res.stderr
    assert service_up(target), "a refused fence stopped the service"
    assert marker.fenced_epoch() is None, "a refused fence wrote the marker"
    # The next epoch's fencer (it takes 6, fences up to 5) is legitimate.
    res = fence_self(target, 5)
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: not service_up(target), 5, "the service to record its stop")
    assert marker.fenced_epoch() == 5


def test_fence_self_proceeds_loudly_when_the_active_record_is_unreadable(
    target: Cluster,
) -> None:
    marker = state_marker(target)
    marker.state_dir.mkdir(parents=True, exist_ok=True)
    marker.active_path.write_bytes(b"\x00garbage")
    res = fence_self(target, 1)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "active_record_unreadable" in res.stdout + res.stderr
    wait_for(lambda: not service_up(target), 5, "the service to record its stop")


def test_active_record_is_cleared_and_a_cleared_record_refuses_nothing(tmp_path: Path) -> None:
    marker = FenceMarker(tmp_path)
    assert marker.active_epoch() is None
    marker.record_active(9)
    assert marker.active_epoch() == 9
    assert json.loads(marker.active_path.read_text())["v"] == 1
    marker.clear_active()
    assert marker.active_epoch() is None
    marker.clear_active()  # twice is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fence.lock"]


# ---------------------------------------------------------------------------
# The fencer frozen mid-chain past its lease, then woken (real daemons)
# ---------------------------------------------------------------------------


def fence_calls(c: Cluster) -> list[dict[str, object]]:
    path = c.root / "fence-calls.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_fencer_frozen_mid_chain_past_its_lease_does_not_run_its_next_method(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """mail1 is active; its daemon dies (its service keeps running). mail2 wins the
    lease and starts fencing mail1 with a first method that blocks. mail2's daemon is
    then frozen past T; mail1's daemon comes back, stops its leftover service, and
    legitimately takes over with a new epoch. When mail2 wakes and its first method
    fails, it must not run its second method (fence-self on mail1, now the active)."""
    root = tmp_path / "c"
    started, release = root / "block-started", root / "block-release"
    blocking = f"touch {started}; while [ ! -e {release} ]; do sleep 0.05; done; exit 1"
    fencing = [
        {"type": "command", "argv": ["sh", "-c", blocking], "timeout": "60s"},
        {"type": "command", "argv": [PY, "-m", "tests.support.localfence", str(root), "{node}"]},
    ]
    c = Cluster(root, zk.address, fencing=fencing)
    mail1, mail2 = c.nodes["mail1"], c.nodes["mail2"]
    try:
        c.start()
        assert c.wait_active(timeout=20) == "mail1"
        wait_for(lambda: service_up(c), 10, "mail1's service up")
        mail1.kill()  # the daemon dies; its service keeps running
        wait_for(started.exists, 20, "mail2 to start fencing mail1")
        mail2.signal(signal.SIGSTOP)
        try:
            mail1.start()  # stops its leftover service, then takes the lease back
            wait_for(
                lambda: (
                    (st := c.status("mail1"))["lease_holder"] == "mail1"
                    and st["active"]["node"] == "mail1"
                    and st["active"]["epoch"] == 2
                    and any(m["node"] == "mail1" and m["role"] == "active" for m in st["members"])
                ),
                30,
                "mail1 active again at epoch 2",
            )
            up = [e for e in c.service_events() if e["event"] == "up" and e["epoch"] == "2"]
            assert up, "mail1's service did not start at epoch 2"
        finally:
            mail2.signal(signal.SIGCONT)
        release.touch()  # the frozen fencer's first method now fails
        wait_for(
            lambda: [e for e in mail2.events() if e.get("event") == "takeover_abandoned"],
            30,
            "mail2 to give up its stale takeover",
        )
        assert fence_calls(c) == [], "the stale fencer ran fence-self on the new active"
        downs = [e for e in c.service_events() if e["event"] == "down" and e["epoch"] == "2"]
        assert downs == [], "the new active's service was stopped by a stale fence"
        stopped = [e for e in mail2.events() if e.get("event") == "fence_chain_stopped"]
        assert stopped and stopped[0]["not_started"] == "command", mail2.events()[-20:]
        assert c.wait_active(timeout=10) == "mail1"
        assert c.status()["active"]["epoch"] == 2
        c.assert_never_two_serving()
    finally:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())
