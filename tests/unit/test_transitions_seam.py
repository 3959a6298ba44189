"""The transitions driven through their seam alone: a NodeState, a stand-in for the
daemon's loop (NodeLoop) and mocked collaborators, no daemon and no ZooKeeper.

What is pinned here is the part of the safety argument the seam must carry: the
order of the steps, the role moving only through set_role, and what the node's
state is left with after each failure edge."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar
from unittest.mock import MagicMock, call

import pytest

from failoverd.fencing.marker import FenceMarker
from failoverd.node.decision import Act, Decision, Role
from failoverd.node.state import NodeState
from failoverd.node.transitions import Transitions
from failoverd.resources.abandoned import AbandonedWork
from failoverd.resources.base import ResourceTimeout
from failoverd.resources.started import RecordUnreadable
from failoverd.zk.coordinator import CoordinationError
from failoverd.zk.znodes import Breadcrumb, Control, KnownEpochs, Request

T = TypeVar("T")
OP_TIMEOUT = 2.5
FLAP_BACKOFF = 5.0
SESSION_TIMEOUT = 2.0  # T
SWITCHOVER_TIMEOUT = 45.0  # config's switchover.timeout


class FakeLoop:
    """A NodeLoop that runs work inline and journals every call in `world`."""

    def __init__(self, world: MagicMock, state: NodeState):
        self.world, self.state = world, state

    def set_role(self, role: Role, reason: str) -> None:
        self.world.loop.set_role(role, reason)
        self.state.role, self.state.reason = role, reason

    def guard(self, what: str, fn: Callable[[], T]) -> T | None:
        self.world.loop.guard(what)
        try:
            return fn()
        except CoordinationError:
            return None

    def await_work(
        self,
        fn: Callable[..., T],
        *args: Any,
        timeout: float,
        abandon: tuple[str, str] | None = None,
    ) -> T:
        self.world.loop.await_work(getattr(fn, "__name__", "?"))
        return fn(*args)

    def resource_env(self, epoch: int | None) -> dict[str, str]:
        return {"FAILOVERD_EPOCH": "" if epoch is None else str(epoch)}

    def record_history(self, event: str, reason: str) -> None:
        self.world.loop.record_history(event)

    def mark_dirty(self, failures: list[str]) -> None:
        self.world.loop.mark_dirty(failures)

    def clear_requests(self) -> None:
        self.world.loop.clear_requests()


def make(role: Role, **state: Any) -> tuple[Transitions, NodeState, MagicMock]:
    world = MagicMock()
    world.abandoned.pending = False
    world.lease.valid.return_value = True
    world.coord.mark_clean.return_value = True
    world.started.read.return_value = None  # nothing recorded: the config's resources
    st = NodeState(role=role, **state)
    config: Any = SimpleNamespace(
        node=SimpleNamespace(name="mail1"),
        flap=SimpleNamespace(backoff=FLAP_BACKOFF),
        zookeeper=SimpleNamespace(session_timeout=SESSION_TIMEOUT),
        switchover=SimpleNamespace(timeout=SWITCHOVER_TIMEOUT),
        peers=[],
        resources=(),
    )
    t = Transitions(
        FakeLoop(world, st),
        st,
        config=config,
        op_timeout=OP_TIMEOUT,
        coord=world.coord,
        lease=world.lease,
        fence_chain=world.fence_chain,
        marker=world.marker,
        started=world.started,
        resources=[],
        resource_watch=world.resource_watch,
        abandoned=world.abandoned,
        health=world.health,
        metrics=world.metrics,
        hooks=world.hooks,
    )
    return t, st, world


def steps(world: MagicMock) -> list[Any]:
    """The journal without the read-only questions (lease.valid) in between."""
    return [c for c in world.mock_calls if c != call.lease.valid()]


def test_a_demotion_for_a_switchover_stops_marks_clean_releases_then_publishes_standby() -> None:
    sw = Request("r1", "mail2", 30.0, "op", "now")
    t, st, world = make(Role.ACTIVE, epoch=7, control=Control(switchover=sw))
    before = time.monotonic()
    t.demote(Decision(Act.DEMOTE, "demoting: switchover to mail2", "switchover", 1.0))
    reason = "demoting: switchover to mail2"
    assert steps(world) == [
        call.resource_watch.unwatch(),
        call.marker.clear_active(),
        call.loop.set_role(Role.DEMOTING, reason),
        call.started.read(),  # what this node started, besides the config's
        call.loop.await_work("stop_all"),
        call.loop.guard("marking the breadcrumb clean"),
        call.coord.mark_clean(7, OP_TIMEOUT),
        call.loop.guard("releasing the lock"),
        call.coord.release_lock(world.lease, OP_TIMEOUT),
        # Everything stopped: nothing this node started runs (after the release,
        # so the peer's takeover does not wait for the fence lock).
        call.marker.held(timeout=0.5),
        call.marker.held().__enter__(),
        call.started.clear(),
        call.marker.held().__exit__(None, None, None),
        call.lease.revoke(),
        call.health.set_active(False),
        call.loop.set_role(Role.STANDBY, reason),
        call.metrics.transition("switchover"),
        call.loop.record_history("demoted"),
        call.hooks.fire("demoted", epoch=7, reason=reason),
    ]
    assert st.role is Role.STANDBY and st.epoch is None
    assert st.lock_read_at == float("-inf") and st.lock_free_since is None
    assert st.backoff_until >= before + 30.0  # the request's timeout, not the decision's 1 s
    assert st.handover == ("mail2", st.backoff_until)
    assert "r1" in st.requests_done


def test_the_back_off_after_a_switchover_is_bounded_by_switchover_timeout() -> None:
    """A request written by hand may say an hour; the old active must not sit out
    an hour should its target fail to take over."""
    sw = Request("r1", "mail2", 3600.0, "op", "now")
    t, st, _ = make(Role.ACTIVE, epoch=7, control=Control(switchover=sw))
    before = time.monotonic()
    t.demote(Decision(Act.DEMOTE, "demoting: switchover to mail2", "switchover", 1.0))
    left = st.backoff_until - before
    assert SWITCHOVER_TIMEOUT <= left < SWITCHOVER_TIMEOUT + 5, f"backs off for {left:.0f}s"


def test_a_stop_failure_marks_the_node_dirty_and_never_clean() -> None:
    t, st, world = make(Role.ACTIVE, epoch=3)
    broken = MagicMock()
    broken.name = "smtp"
    broken.stop.side_effect = RuntimeError("still running")
    t.resources = [broken]
    t.demote(Decision(Act.DEMOTE, "demoting: unhealthy", "health", 0.0))
    assert call.loop.mark_dirty(["smtp: still running"]) in world.mock_calls
    assert not [c for c in world.mock_calls if c == call.coord.mark_clean(3, OP_TIMEOUT)]
    assert st.role is Role.STANDBY and len(st.health_demotions) == 1


def test_a_takeover_that_cannot_read_the_breadcrumb_gives_the_lock_back() -> None:
    t, st, world = make(Role.STANDBY, lock_free_since=1.0)
    world.coord.try_acquire.return_value = True
    world.coord.read_breadcrumb.side_effect = CoordinationError("connection loss")
    t.take_over(Decision(Act.CONTEND, "lock free", "contend"))
    assert steps(world) == [
        call.loop.guard("creating the lock"),
        call.coord.try_acquire(world.lease, OP_TIMEOUT),
        call.loop.set_role(Role.FENCING, "lock free"),
        call.coord.read_breadcrumb(OP_TIMEOUT),
        call.loop.guard("releasing the lock"),
        call.coord.release_lock(world.lease, OP_TIMEOUT),
        call.metrics.transition("coordination"),
        call.lease.revoke(),
        call.loop.set_role(Role.STANDBY, "takeover abandoned: connection loss"),
    ]
    assert st.role is Role.STANDBY and st.lock_free_since is None
    assert st.epoch is None


def test_an_unforeseen_failure_of_the_lock_create_backs_off_in_standby() -> None:
    t, st, world = make(Role.STANDBY, lock_read_at=12.0)
    world.coord.try_acquire.side_effect = RecursionError("poisoned")
    before = time.monotonic()
    t.take_over(Decision(Act.CONTEND, "lock free", "contend"))
    assert call.lease.revoke() in world.mock_calls
    assert not [c for c in world.mock_calls if c[0] == "loop.set_role"]
    assert st.role is Role.STANDBY and st.lock_read_at == float("-inf")
    assert st.backoff_until >= before + FLAP_BACKOFF


def test_a_move_from_an_unexpected_role_is_a_bug() -> None:
    t, _, world = make(Role.STANDBY)
    with pytest.raises(AssertionError, match="transition from standby"):
        t.demote(Decision(Act.DEMOTE, "x", "health"))
    assert not world.mock_calls


def lock_is_free(path: Path) -> bool:
    """What fence-self would find: try the fence lock from another open file (flock
    locks belong to the open file, so this conflicts even within this process)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


@pytest.mark.parametrize("how", ["killed-at-its-timeout", "worker-hung"])
def test_an_abandoned_start_hands_the_fence_lock_over_without_letting_go(
    tmp_path: Path, how: str
) -> None:
    """From the start of a resource to the end of the demotion after it was abandoned,
    fence-self must never find the fence lock free: this node's own stop cannot be
    trusted now, so the peer's ssh fence has to fail and fall through to a stronger
    method. The start's lock is handed to the abandoned-work holder, never released."""
    t, st, world = make(Role.STANDBY, lock_free_since=1.0)
    marker = FenceMarker(tmp_path / "state")
    abandoned = AbandonedWork(marker.lock_path)
    t.marker, t.abandoned = marker, abandoned
    world.coord.try_acquire.return_value = True
    world.coord.read_breadcrumb.return_value = (Breadcrumb("mail1", 3, "t", True), True, 3)
    world.coord.highest_known_epoch.return_value = KnownEpochs(3)
    world.lease.session = world.coord.last_session_id = 17
    seen: list[tuple[str, bool]] = []
    watching = False

    def probe(where: str) -> None:
        if watching:
            seen.append((where, lock_is_free(marker.lock_path)))

    def start(env: Any) -> None:
        nonlocal watching
        watching = True
        probe("the start")
        if how == "killed-at-its-timeout":
            raise ResourceTimeout("command mail start: `mail-up` timed out after 2s")
        time.sleep(0.01)  # in the daemon: the worker still runs when await_work gives up

    res = SimpleNamespace(name="command mail", timeout=2.0, start=start)
    res.stop = lambda env: probe("the stop")
    t.resources = [res]
    loop = t.loop
    assert isinstance(loop, FakeLoop)

    def await_work(fn: Callable[..., T], *args: Any, timeout: float, abandon: Any = None) -> T:
        if fn is start and how == "worker-hung":
            fn(*args)
            abandoned.add(abandon[0], abandon[1], timeout, None)  # as Daemon.await_work does
            raise TimeoutError("start hung for 4s")
        probe(f"await_work {getattr(fn, '__name__', '?')}")
        return fn(*args)

    def set_role(role: Role, reason: str) -> None:
        probe(f"set_role {role}")
        st.role, st.reason = role, reason

    loop.await_work = await_work  # type: ignore[method-assign]
    loop.set_role = set_role  # type: ignore[method-assign]
    clear_active = marker.clear_active
    marker.clear_active = lambda: (probe("clear_active"), clear_active())[1]  # type: ignore[method-assign]
    world.resource_watch.unwatch.side_effect = lambda: probe("unwatch")
    world.health.set_active.side_effect = lambda active: probe(f"set_active {active}")

    t.take_over(Decision(Act.CONTEND, "lock free", "contend"))
    probe("after the demotion")
    assert st.role is Role.STANDBY and abandoned.pending
    assert [where for where, free in seen if free] == [], seen
    assert len(seen) > 5, seen
    abandoned.release_fence_lock()  # confirmed gone (what sweep() does at the end)
    assert lock_is_free(marker.lock_path)


def test_a_demotion_whose_stop_is_abandoned_holds_the_fence_lock_before_it_lets_the_lock_go(
    tmp_path: Path,
) -> None:
    """The peer fences this node once it sees the lock free. A stop given up on may
    still be running: this node's fence-self must not vouch for it, so the fence lock
    is held before the lock is released, not from the first sweep on."""
    t, st, world = make(Role.ACTIVE, epoch=4)
    marker = FenceMarker(tmp_path / "state")
    marker.state_dir.mkdir()
    abandoned = AbandonedWork(marker.lock_path)
    t.marker, t.abandoned = marker, abandoned
    loop = t.loop
    assert isinstance(loop, FakeLoop)

    def await_work(fn: Callable[..., T], *args: Any, timeout: float, abandon: Any = None) -> T:
        abandoned.add(abandon[0], abandon[1], timeout, None)  # as Daemon.await_work does
        raise TimeoutError("stop_all hung")

    loop.await_work = await_work  # type: ignore[method-assign]
    free_at_release: list[bool] = []
    world.coord.release_lock.side_effect = lambda *a: free_at_release.append(
        lock_is_free(marker.lock_path)
    )
    t.demote(Decision(Act.DEMOTE, "demoting: unhealthy", "health", 0.0))
    assert free_at_release == [False], "the fence lock was free when the lock was released"
    assert st.role is Role.STANDBY and abandoned.pending
    abandoned.release_fence_lock()


def promotable(world: MagicMock) -> MagicMock:
    """A takeover that needs no fence (mail1's own clean breadcrumb) and one resource."""
    world.coord.try_acquire.return_value = True
    world.coord.read_breadcrumb.return_value = (Breadcrumb("mail1", 4, "now", True), True, 4)
    world.coord.highest_known_epoch.return_value = KnownEpochs(4)
    world.marker.blocks.return_value = False
    world.lease.session = world.coord.last_session_id = 1
    world.res.name, world.res.timeout = "postfix", 5.0
    return world.res


def test_a_takeover_records_what_it_starts_under_the_fence_lock_before_the_first_start() -> None:
    t, st, world = make(Role.STANDBY)
    t.resources = [promotable(world)]
    t.config.resources = ("postfix config",)
    t.take_over(Decision(Act.CONTEND, "lock free", "contend"))
    journal = [c for c in steps(world) if c[0] != "res.start"]
    first_start = journal.index(call.loop.await_work("?"))  # the resource's start
    assert journal[first_start - 8 : first_start] == [
        call.marker.record_active(5),
        call.marker.held(timeout=1.0),
        call.marker.held().__enter__(),
        call.started.add(("postfix config",), 5),
        call.marker.held().__exit__(None, None, None),
        call.marker.held(timeout=1.0),  # the start's own hold
        call.marker.held().__enter__(),
        call.marker.blocks(5),
    ]
    assert st.role is Role.ACTIVE and st.epoch == 5


def test_an_unreadable_record_stops_a_takeover_before_any_start_and_keeps_it_out() -> None:
    t, st, world = make(Role.STANDBY)
    t.resources = [promotable(world)]
    world.started.add.side_effect = RecordUnreadable("started-resources.json: not JSON")
    world.started.read.side_effect = RecordUnreadable("started-resources.json: not JSON")
    t.take_over(Decision(Act.CONTEND, "lock free", "contend"))
    assert call.res.start({"FAILOVERD_EPOCH": "5"}) not in world.mock_calls
    assert call.loop.await_work("stop_all") in world.mock_calls  # the config's, all the same
    assert not [c for c in world.mock_calls if c[0] in ("coord.mark_clean", "started.clear")]
    assert st.role is Role.STANDBY
    assert st.leftovers_unknown.startswith("resources record unreadable")


def test_a_stop_failure_keeps_the_record() -> None:
    t, _, world = make(Role.ACTIVE, epoch=3)
    broken = MagicMock()
    broken.name = "smtp"
    broken.stop.side_effect = RuntimeError("still running")
    t.resources = [broken]
    t.demote(Decision(Act.DEMOTE, "demoting: unhealthy", "health", 0.0))
    assert call.started.clear() not in world.mock_calls


class Ordered:
    """A resource with `name:` and `after:` whose start and stop record when they ran."""

    def __init__(self, name: str, after: tuple[str, ...] | None, log: list[Any]):
        self.name, self.after, self.log = name, after, log
        self.key, self.timeout, self.fail = f"resources[{name}]", 5.0, False

    def _op(self, what: str) -> None:
        began = time.monotonic()
        time.sleep(0.15)
        if self.fail and what == "start":
            raise ResourceTimeout(f"{self.key}.start (command): timed out after 5s")
        self.log.append((what, self.name, began, time.monotonic()))

    def start(self, env: Any) -> None:
        self._op("start")

    def stop(self, env: Any) -> None:
        self._op("stop")


def mail_node(log: list[Any]) -> list[Ordered]:
    """The mail node's order: Postfix and Dovecot once the store and the VIP are up."""
    both = ("store", "vip")
    return [
        Ordered("store", None, log),
        Ordered("vip", (), log),
        Ordered("postfix", both, log),
        Ordered("dovecot", both, log),
    ]


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_a_takeover_with_after_starts_in_parallel_under_one_hold_of_the_fence_lock() -> None:
    t, st, world = make(Role.STANDBY)
    promotable(world)
    log: list[Any] = []
    t.resources = mail_node(log)  # type: ignore[assignment]
    t.take_over(Decision(Act.CONTEND, "lock free", "contend"))
    assert st.role is Role.ACTIVE
    s = {name: (a, b) for what, name, a, b in log if what == "start"}
    assert overlap(s["store"], s["vip"]) and overlap(s["postfix"], s["dovecot"])
    assert min(s["postfix"][0], s["dovecot"][0]) >= max(s["store"][1], s["vip"][1])
    holds = [c for c in world.mock_calls if c == call.marker.held(timeout=1.0)]
    assert len(holds) == 2  # the record's, then one for all four starts
    # Once when the epoch is chosen, then right before each of the four starts.
    assert [c for c in world.mock_calls if c[0] == "marker.blocks"] == [call.marker.blocks(5)] * 5


def test_a_failed_parallel_start_demotes_and_stops_everything_in_reverse_order() -> None:
    t, st, world = make(Role.STANDBY)
    promotable(world)
    log: list[Any] = []
    t.resources = mail_node(log)  # type: ignore[assignment]
    t.resources[3].fail = True  # type: ignore[attr-defined]  # dovecot is killed at its timeout
    t.take_over(Decision(Act.CONTEND, "lock free", "contend"))
    assert st.role is Role.STANDBY and "dovecot did not start" in st.reason
    # Its start may have left something behind: tracked, and the lock handed over.
    world.abandoned.add.assert_called_once()
    assert world.abandoned.add.call_args[0][1] == "dovecot start"
    s = {name: (a, b) for what, name, a, b in log if what == "stop"}
    assert sorted(s) == ["dovecot", "postfix", "store", "vip"]
    assert min(s["store"][0], s["vip"][0]) >= max(s["postfix"][1], s["dovecot"][1])


@pytest.mark.parametrize("how", ["killed-at-its-timeout", "worker-hung"])
def test_an_abandoned_parallel_start_hands_the_one_fence_lock_over_without_letting_go(
    tmp_path: Path, how: str
) -> None:
    """As for the serial start: from the first start to the end of the demotion the
    fence lock is never free, though two starts ran at once under one hold."""
    t, st, world = make(Role.STANDBY)
    promotable(world)
    marker = FenceMarker(tmp_path / "state")
    abandoned = AbandonedWork(marker.lock_path)
    t.marker, t.abandoned = marker, abandoned
    seen: list[tuple[str, bool]] = []
    release = threading.Event()
    watching = False  # from the first start on

    def probe(where: str) -> None:
        if watching or where.endswith(" start"):
            seen.append((where, lock_is_free(marker.lock_path)))

    log: list[Any] = []
    store, vip = Ordered("store", None, log), Ordered("vip", (), log)
    store.start = lambda env: probe("store start")  # type: ignore[method-assign]
    vip.timeout = 0.05  # given up on 2 s later when it hangs

    def vip_start(env: Any) -> None:
        nonlocal watching
        watching = True
        probe("vip start")
        if how == "killed-at-its-timeout":
            raise ResourceTimeout("resources[1].start (vip): timed out after 0.05s")
        release.wait(10)

    vip.start = vip_start  # type: ignore[method-assign]
    store.stop = lambda env: probe("store stop")  # type: ignore[method-assign]
    vip.stop = lambda env: probe("vip stop")  # type: ignore[method-assign]
    t.resources = [store, vip]  # type: ignore[list-item]
    loop = t.loop
    assert isinstance(loop, FakeLoop)

    def set_role(role: Role, reason: str) -> None:
        probe(f"set_role {role}")
        st.role, st.reason = role, reason

    def clear_active() -> None:
        probe("clear_active")
        FenceMarker.clear_active(marker)

    loop.set_role = set_role  # type: ignore[method-assign]
    marker.clear_active = clear_active  # type: ignore[method-assign]
    world.resource_watch.unwatch.side_effect = lambda: probe("unwatch")
    world.health.set_active.side_effect = lambda active: probe(f"set_active {active}")
    t.take_over(Decision(Act.CONTEND, "lock free", "contend"))
    probe("after the demotion")
    release.set()
    assert st.role is Role.STANDBY and abandoned.pending
    assert "vip start" in st.reason
    assert {"store start", "vip start", "unwatch", "clear_active", "vip stop"} <= {
        w for w, _ in seen
    }
    assert [where for where, free in seen if free] == [], seen
    abandoned.release_fence_lock()
    assert lock_is_free(marker.lock_path)
