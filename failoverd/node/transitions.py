"""Takeover and demotion as explicit steps: the safety argument.

    takeover:  STANDBY -> FENCING -> PROMOTING -> ACTIVE
    demotion:  ACTIVE | PROMOTING | FENCING -> DEMOTING -> STANDBY

Each move is guarded by the role it starts from (`_expect`), and every failure
edge is taken where it is commented (`# FENCING -> STANDBY: fence failed`).
The daemon's loop only decides *that* a transition happens; how it happens, and
what the node is left with when a step fails, is here.

The seam to the daemon is narrow and named: the node's shared state
(`NodeState`, failoverd/node/state.py), the collaborators a transition drives
(passed in), and the few calls back into the loop (`NodeLoop`, below).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog

from failoverd.config import Config
from failoverd.config.order import Order
from failoverd.config.timing import STOP_SLACK
from failoverd.fencing.base import FenceRequest, FenceTarget
from failoverd.fencing.chain import FenceChain
from failoverd.fencing.marker import FenceMarker
from failoverd.health import HealthMonitor
from failoverd.node.confirmation import applies, lease_wait
from failoverd.node.decision import (
    Act,
    Decision,
    EpochPlan,
    Role,
    early_retry,
    may_start_resource,
    plan_epoch,
    plan_fencing,
    stop_is_fence,
)
from failoverd.node.state import NodeState
from failoverd.observe.hooks import HookRunner
from failoverd.observe.metrics import Metrics
from failoverd.resources.abandoned import AbandonedWork, tagged
from failoverd.resources.base import Resource, ResourceError, ResourceTimeout, stop_all
from failoverd.resources.order import order_of, run
from failoverd.resources.started import RecordUnreadable, StartedRecord, leftovers
from failoverd.resources.watch import ResourceWatch
from failoverd.zk.coordinator import CoordinationError, Coordinator
from failoverd.zk.lease import LocalLease
from failoverd.zk.znodes import Breadcrumb, now_iso

log = structlog.get_logger("failoverd.node.transitions")
T = TypeVar("T")

# How long a demotion waits for the fence lock to clear the resources record. Short:
# whoever holds it is a fence-self, which clears the record itself once it stopped
# everything; a record left behind costs only stops of what no longer runs.
CLEAR_LOCK_WAIT = 0.5


class NodeLoop(Protocol):
    """What a transition asks of the daemon's loop, which owns the node.

    Contract: the loop never starts a transition while one is running (a transition
    runs to completion inside one loop cycle, on the loop's thread), and every move
    of the role goes through `set_role`; the transitions check the role a move
    starts from (`_expect`) and never assign `NodeState.role` themselves.
    """

    def set_role(self, role: Role, reason: str) -> None:
        """Set the role and its reason, then publish them (log, metrics, member, systemd)."""
        ...

    def guard(self, what: str, fn: Callable[[], T]) -> T | None:
        """Run one ZooKeeper call; a CoordinationError is logged and becomes None."""
        ...

    def await_work(
        self,
        fn: Callable[..., T],
        *args: Any,
        timeout: float,
        abandon: tuple[str, str] | None = None,
    ) -> T:
        """Run blocking work off the loop's thread while the watchdog is kept petted.
        TimeoutError past `timeout`; `abandon` (tag, what) then makes the node unclean."""
        ...

    def resource_env(self, epoch: int | None) -> dict[str, str]:
        """FAILOVERD_CLUSTER, _NODE and _EPOCH for resource commands and fencers."""
        ...

    def record_history(self, event: str, reason: str) -> None:
        """Append an entry to the cluster's history (skipped while disconnected)."""
        ...

    def mark_dirty(self, failures: list[str]) -> None:
        """Resources would not stop: the node stays out of contention until they do."""
        ...

    def clear_requests(self) -> None:
        """Remove the operator's served switchover or failover request from control."""
        ...


class Transitions:
    """The takeover and demotion sequences of one node (its state lives in `state`)."""

    def __init__(
        self,
        loop: NodeLoop,
        state: NodeState,
        *,
        config: Config,
        op_timeout: float,
        coord: Coordinator,
        lease: LocalLease,
        fence_chain: FenceChain,
        marker: FenceMarker,
        started: StartedRecord,
        resources: list[Resource],
        resource_watch: ResourceWatch,
        abandoned: AbandonedWork,
        health: HealthMonitor,
        metrics: Metrics,
        hooks: HookRunner,
    ):
        self.loop = loop
        self.state = state
        # The parts read here (flap, peers, fencing, timeouts) are the ones a reload
        # leaves alone: SIGHUP applies logging only.
        self.config = config
        self.node = config.node.name
        self.op_timeout = op_timeout  # deadline of one ZooKeeper call
        self.coord = coord
        self.lease = lease
        self.fence_chain = fence_chain
        self.marker = marker
        self.started = started  # what this node started: fence-self stops it too
        self.resources = resources
        self.resource_watch = resource_watch
        self.abandoned = abandoned
        self.health = health
        self.metrics = metrics
        self.hooks = hooks

    # -- guards ---------------------------------------------------------------

    def _expect(self, *roles: Role) -> None:
        """Like supervisor's _assertInState: a move from an unexpected role is a bug."""
        if self.state.role not in roles:
            allowed = "|".join(str(r) for r in roles)
            raise AssertionError(f"transition from {self.state.role}, expected {allowed}")

    # -- takeover: lock won -> fence -> breadcrumb -> resources ----------------------

    def take_over(self, d: Decision) -> None:
        """STANDBY -> FENCING -> PROMOTING -> ACTIVE, or back to STANDBY by a failure edge."""
        self._expect(Role.STANDBY)
        try:
            self._take_over(d)
        except Exception as e:  # noqa: BLE001 - the edge for everything nobody foresaw
            self.failed(e)

    def failed(self, e: BaseException) -> None:
        """The catch-all failure edge ("every transition is total").

        Whatever a step raised (OSError from a state dir that went read-only, a bug,
        a poisoned znode), the node ends in STANDBY: the lock released, anything it
        started stopped, backed off, alerted. It never sits in a transitional role,
        where nothing would ever move it again while the lease keeper renews."""
        role = self.state.role
        log.critical(
            "transition_failed",
            role=str(role),
            error=f"{type(e).__name__}: {e}",
            exc_info=e,
            hint="the node backs off and retries; if this repeats, check its state dir and log",
        )
        why = f"{role} failed ({type(e).__name__}: {e})"
        backoff = self.config.flap.backoff
        if role is Role.STANDBY:
            # STANDBY -> STANDBY: the lock create itself failed oddly; if it did reach
            # ZooKeeper, the loop gives the stray lock back (RELEASE_STRAY_LOCK).
            self.lease.revoke()
            self.state.lock_read_at = float("-inf")
            self.back_off(time.monotonic(), backoff, failed_takeover=True)
        elif role is Role.FENCING:
            # FENCING -> STANDBY: nothing started yet
            self.abandon("transition_failed", why, backoff)
        else:
            # PROMOTING|DEMOTING|ACTIVE -> DEMOTING -> STANDBY: stop whatever started
            self.demote(Decision(Act.DEMOTE, f"demoting: {why}", "transition_failed", backoff))

    def _take_over(self, d: Decision) -> None:
        started = time.monotonic()
        acquired = self.loop.guard(
            "creating the lock", lambda: self.coord.try_acquire(self.lease, self.op_timeout)
        )
        self.state.lock_read_at = float("-inf")
        if not acquired:
            return  # STANDBY -> STANDBY: a peer was faster, or ZooKeeper did not answer
        # Lease-wait counts only from a time this node sees the lock free *after* now.
        self.state.lock_free_since = None
        # STANDBY -> FENCING: lock won
        self.loop.set_role(Role.FENCING, d.reason)
        try:
            crumb, readable, version = self.coord.read_breadcrumb(self.op_timeout)
            known = self.coord.highest_known_epoch(self.op_timeout)
        except CoordinationError as e:
            # FENCING -> STANDBY: cannot tell whom to fence
            return self.abandon("coordination", str(e), backoff=0.0)
        epoch = self._epoch(plan_epoch(crumb, readable, version, known))
        if epoch is None:
            return None  # FENCING -> STANDBY: abandoned, before anybody was fenced
        peers = tuple(p.name for p in self.config.peers)
        plan = plan_fencing(crumb, readable, self.node, peers)
        log.info("fence_planned", targets=list(plan.targets), reason=plan.reason, epoch=epoch)
        if not plan.possible:
            # FENCING -> STANDBY: the previous active is nobody we can fence
            return self.abandon("fence_impossible", plan.reason, self.config.flap.backoff)
        for name in plan.targets:
            if self._confirmed_down(name, crumb, readable, epoch):
                continue  # FENCING -> FENCING: an operator's word stands in for this fence
            if not self.fence(name, epoch):
                # FENCING -> STANDBY: fence failed
                return self.abandon(
                    "fence_failed", f"could not fence {name}", self.config.flap.backoff
                )
        if not self.lease.valid():
            # FENCING -> STANDBY: the lease ran out while we fenced; a peer may hold it now
            return self.abandon("lease_lost", "local lease ran out while fencing", backoff=0.0)

        self._expect(Role.FENCING)
        # FENCING -> PROMOTING: every previous active fenced (or handed over cleanly)
        self.loop.set_role(Role.PROMOTING, f"fenced ({plan.reason}); promoting with epoch {epoch}")
        try:
            self.coord.write_breadcrumb(
                Breadcrumb(self.node, epoch, now_iso(), False), version, self.op_timeout
            )
        except CoordinationError as e:
            # PROMOTING -> STANDBY: breadcrumb not written, so nothing may start
            return self.abandon("coordination", str(e), backoff=0.0)
        # Breadcrumb first: if we crash after this, the next winner fences us.
        self.state.epoch = epoch
        # From here on the service checks (scope "active") judge this node too.
        self.health.set_active(True)
        env = self.loop.resource_env(epoch)
        try:  # under the fence lock: from here on fence-self refuses older epochs
            self.marker.record_active(epoch)
            # ... and, before the first start, knows what this node starts: the file
            # may be edited before our restart, and fence-self and the start-up
            # cleanup (which read the file) must stop what *we* started too.
            with self.marker.held(timeout=1.0):
                self.started.add(self.config.resources, epoch)
        except (OSError, TimeoutError, RecordUnreadable) as e:
            # PROMOTING -> DEMOTING -> STANDBY: the state dir is unusable (an older
            # fence could stop us unnoticed, and no start could take the fence lock),
            # or an earlier record is unreadable (the demotion keeps us out of contention)
            return self.failed(e)
        failure = self._start_resources(epoch, env)
        if failure is not None:
            res, error = failure
            # PROMOTING -> DEMOTING -> STANDBY: a resource did not start
            log.error("resource_start_failed", resource=res.name, error=str(error), epoch=epoch)
            failed = f"{getattr(res, 'key', 'resource')}.start"  # resources[2].start
            _step("counting the failure", partial(self.metrics.resource_failed, failed))
            return self.demote(
                Decision(
                    Act.DEMOTE,
                    f"demoting: {res.name} did not start ({error})",
                    "start_failed",
                    backoff=self.config.flap.backoff,
                )
            )
        took = time.monotonic() - started
        self._expect(Role.PROMOTING)
        # PROMOTING -> ACTIVE: every resource started under a valid lease
        # set_role sets the role before it publishes it; a failure to publish (or
        # any bookkeeping below) must not undo a finished promotion.
        _step(
            "publishing the role",
            lambda: self.loop.set_role(Role.ACTIVE, f"promoted with epoch {epoch}"),
        )
        self.state.failed_takeovers, self.state.early_retry_at = 0, None
        self.resource_watch.watch(env)
        log.info("promoted", epoch=epoch, took_ms=round(took * 1000), reason=d.reason)
        _step("counting the transition", lambda: self.metrics.transition("takeover"))
        _step(
            "writing history",
            lambda: self.loop.record_history("promoted", f"{plan.reason}; took {took:.2f}s"),
        )
        _step(
            "queueing hooks", lambda: self.hooks.fire("promoted", epoch=epoch, reason=plan.reason)
        )
        _step("clearing the operator's request", self.loop.clear_requests)

    # -- starting the resources ---------------------------------------------------------

    def _start_resources(
        self, epoch: int, env: dict[str, str]
    ) -> tuple[Resource, BaseException] | None:
        """Start every resource; the first that did not start and why, or None.

        Without `after:` anywhere, the list order, one at a time, each start under its
        own hold of the fence lock. With it, in parallel where the order allows
        (`_start_in_order`)."""
        order = order_of(self.resources)
        if not order.serial:
            return self._start_in_order(order, epoch, env)
        for res in self.resources:
            # Tagged, so that every process of this start can be found if we give up on it.
            tag, start_env = tagged(env)
            what, timeout = f"{res.name} start", resource_timeout(res)
            try:
                with self.marker.held(timeout=1.0) as lock:
                    ok, why = may_start_resource(
                        self.lease.valid(),
                        self.lease.session is not None
                        and self.lease.session == self.coord.last_session_id,
                        self.marker.blocks(epoch),
                    )
                    if not ok:
                        raise ResourceError(why)
                    # Immediately before the start: the chaos lab's trigger for the
                    # "just before a resource start" window fires on it.
                    log.info("resource_starting", resource=res.name, epoch=epoch)
                    try:
                        self.loop.await_work(
                            res.start, start_env, timeout=timeout + 2.0, abandon=(tag, what)
                        )
                    except (ResourceTimeout, TimeoutError) as e:
                        if isinstance(e, ResourceTimeout):
                            # Killed at its timeout, but what it setsid'ed may still come
                            # up: the node is unclean until that is confirmed gone.
                            self.abandoned.add(tag, what, timeout, None)
                        if self.abandoned.pending:  # (await_work abandons a hung worker)
                            # Hand the locked descriptor over, still inside the block:
                            # released here and taken again in the demotion, the lock
                            # would be free for an instant in which fence-self could
                            # stop "everything" and vouch for this node while the
                            # abandoned start may still complete.
                            self.abandoned.adopt_fence_lock(lock.keep())
                        raise
            except (ResourceError, TimeoutError) as e:
                return res, e
        return None

    def _start_in_order(
        self, order: Order, epoch: int, env: dict[str, str]
    ) -> tuple[Resource, BaseException] | None:
        """Each resource as soon as everything it waits for has started (`after:`,
        config/order.py), each on its own thread (resources/order.py).

        The fence lock is held across all of them, taken once here: it is a flock,
        so two starts of this process could not each hold it. The safety argument is
        the serial one's: each start still checks the lease and the marker right
        before it runs, and no fence-self can write the marker while any start
        runs. What it costs: a fence-self waits for the whole start (at most its
        lock wait, then the peer falls through to a stronger method), not one
        resource's. Each start is given up on at its timeout plus 2 s, as the serial
        path's await_work does."""
        resources = self.resources
        tags = [tagged(env) for _ in resources]  # every process of each start, findable

        def start(i: int) -> None:
            res = resources[i]
            ok, why = may_start_resource(
                self.lease.valid(),
                self.lease.session is not None and self.lease.session == self.coord.last_session_id,
                self.marker.blocks(epoch),
            )
            if not ok:
                raise ResourceError(why)
            # Immediately before the start: the chaos lab's trigger fires on it.
            log.info("resource_starting", resource=res.name, epoch=epoch)
            res.start(tags[i][1])

        limits = [resource_timeout(r) + 2.0 for r in resources]
        # The plain sum bounds any order (the critical path is never longer); the
        # runner gives up on each start at its own limit well before this.
        budget = sum(limits) + STOP_SLACK
        try:
            with self.marker.held(timeout=1.0) as lock:
                try:
                    runner = partial(run, keep_going=False, deadlines=limits)
                    out = self.loop.await_work(runner, order, start, timeout=budget)
                except TimeoutError as e:
                    # The runner itself hung: any start may still be running.
                    for i, res in enumerate(resources):
                        self.abandoned.add(tags[i][0], f"{res.name} start", limits[i], None)
                    self.abandoned.adopt_fence_lock(lock.keep())
                    return resources[0], e
                for i, error in out.failed.items():
                    if isinstance(error, ResourceTimeout):
                        # Killed at its timeout, but what it setsid'ed may still come up.
                        what = f"{resources[i].name} start"
                        self.abandoned.add(tags[i][0], what, resource_timeout(resources[i]), None)
                for i, future in out.hung.items():
                    log.critical("operation_hung", operation=f"{resources[i].name} start",
                                 timeout=limits[i])  # fmt: skip
                    self.abandoned.add(tags[i][0], f"{resources[i].name} start", limits[i], future)
                if self.abandoned.pending:
                    # Handed over inside the block, as on the serial path: never free
                    # while an abandoned start may still complete.
                    self.abandoned.adopt_fence_lock(lock.keep())
        except TimeoutError as e:  # the fence lock stayed busy: a fence-self runs
            return resources[0], e
        for i, error in out.failed.items():
            return resources[i], error
        for i in out.hung:
            return resources[i], TimeoutError(f"start hung for {limits[i]:g}s")
        return None

    # -- what this node started ---------------------------------------------------------

    def leftovers(self) -> tuple[list[Resource], bool]:
        """What may run here, for stop_all: the resources this node recorded before
        it started them and the config's (resources/started.py), and whether that
        is known. An unreadable record is not guessed around: the config's resources
        are stopped all the same, and the node stays out of contention
        (`NodeState.leftovers_unknown`) until the record can be read."""
        try:
            found = leftovers(self.started, self.config.resources, self.resources)
        except RecordUnreadable as e:
            if not self.state.leftovers_unknown:
                log.critical(
                    "resources_record_unreadable",
                    error=str(e),
                    hint="this node does not contend: what it started before is unknown; "
                    "stop those services by hand, then remove the record",
                )
            self.state.leftovers_unknown = f"resources record unreadable ({e})"
            return list(self.resources), False
        if self.state.leftovers_unknown:
            log.warning("resources_record_readable", path=str(self.started.path))
            self.state.leftovers_unknown = ""
        return found, True

    def clear_started(self) -> None:
        """Everything recorded and configured stopped cleanly: clear the record,
        under the fence lock (a fence-self holding it clears it itself)."""
        with self.marker.held(timeout=CLEAR_LOCK_WAIT):
            self.started.clear()

    def fence(self, name: str, epoch: int) -> bool:
        """Run the fencing chain against one peer; True when a method succeeded."""
        peer = self.config.peer(name)
        assert peer is not None
        req = FenceRequest(
            target=FenceTarget(peer.name, peer.address),
            new_epoch=epoch,
            env={**self.loop.resource_env(epoch), "FAILOVERD_TARGET": peer.name},
            lock_free_since=self.state.lock_free_since,
            lease_valid=self.lease.valid,
        )
        budget = sum(getattr(f, "timeout", 0.0) or 0.0 for f in self.config.fencing)
        budget += (
            self.config.zookeeper.session_timeout
            + (self.config.watchdog.timeout if self.config.watchdog else 0.0)
            + 5.0
        )
        t0 = time.monotonic()
        try:
            ok, outcomes = self.loop.await_work(self.fence_chain.fence, req, timeout=budget)
        except TimeoutError:
            ok, outcomes = False, []
        for o in outcomes:
            self.metrics.fence_finished(o.method, o.ok, o.took)
        detail = [f"{o.method}: {'ok' if o.ok else 'failed'}: {o.reason}" for o in outcomes]
        if ok:
            log.info(
                "fenced",
                target=name,
                epoch=epoch,
                took_ms=round((time.monotonic() - t0) * 1000),
                methods=detail,
            )
            self.loop.record_history("fenced", f"{name}: {detail[-1] if detail else ''}")
            self.hooks.fire("fenced", epoch=epoch, peer=name, reason="; ".join(detail))
        else:
            log.critical(
                "fence_failed",
                target=name,
                epoch=epoch,
                methods=detail,
                hint="no takeover until a fencing method works; run failoverctl fence-check",
            )
            self.loop.record_history("fence_failed", f"{name}: " + "; ".join(detail))
            self.hooks.fire("fence_failed", epoch=epoch, peer=name, reason="; ".join(detail))
        return ok

    def _confirmed_down(
        self, name: str, crumb: Breadcrumb | None, readable: bool, epoch: int
    ) -> bool:
        """True when an operator's confirmation (failoverctl confirm-fenced) stands in
        for fencing `name`: it applies (node/confirmation.py), this node waited out
        `name`'s lease, and this node's write consumed it. Every other outcome is
        False, and `name` is fenced as always."""
        if self.state.control.fence_confirmed is None:
            # As the loop last read control (its watch wakes the loop on a change):
            # no round trip on a takeover nobody confirmed anything for. One written
            # just now is seen by the next attempt, after the back-off.
            return False
        try:
            conf = self.coord.read_control(self.op_timeout)[0].fence_confirmed
            if conf is None:
                return False
            connected = set(self.coord.read_members(self.op_timeout))
        except CoordinationError as e:
            log.warning("fence_confirmation_unread", target=name, error=str(e))
            return False
        verdict = applies(conf, name, crumb, readable, connected)
        if not verdict.ok:
            log.warning("fence_confirmation_ignored", target=name, id=conf.id, reason=verdict.why)
            return False
        zk = self.config.zookeeper
        wait = lease_wait(zk.session_timeout, zk.lease_margin)
        log.info("fence_confirmation_waiting", target=name, id=conf.id, wait=wait, epoch=epoch)
        try:
            waited = self.loop.await_work(_wait_out, wait, self.lease.valid, timeout=wait + 5.0)
        except TimeoutError:
            waited = False
        if not waited:
            log.warning("fence_confirmation_unused", target=name, reason="own lease ran out")
            return False
        try:
            # Once more after the wait: a node that came back meanwhile is not down.
            if name in self.coord.read_members(self.op_timeout):
                log.warning("fence_confirmation_ignored", target=name, reason="it reconnected")
                return False
            # Consumed before the breadcrumb moves on (promote, below): a takeover
            # that dies in between has used up the word without starting anything,
            # and the next one fences the node again. Only availability is lost then
            # (an operator confirms again), never safety, so the order stays.
            used = self.coord.consume_fence_confirmation(conf.id, self.op_timeout)
        except CoordinationError as e:
            log.warning("fence_confirmation_unused", target=name, reason=str(e))
            return False
        if not used:
            log.warning("fence_confirmation_unused", target=name, reason="changed or taken")
            return False
        log.warning(
            "fence_skipped",
            target=name,
            epoch=epoch,
            id=conf.id,
            by=conf.by,
            reason=conf.reason,
            waited=wait,
        )
        self.loop.record_history(
            "fence_skipped",
            # Who vouched for it is in the fence_confirmed entry the recorder wrote.
            f"{name} not fenced: confirmed down at {conf.at} "
            f"({conf.reason or 'no reason given'}); waited out its lease ({wait:g}s)",
        )
        return True

    def abandon(self, code: str, reason: str, backoff: float) -> None:
        """Give the lock back without having started anything. Total: each step may
        fail on its own, and the node still ends in STANDBY without a lease."""
        self._expect(Role.FENCING, Role.PROMOTING)
        release = lambda: self.coord.release_lock(self.lease, self.op_timeout)  # noqa: E731
        log.warning("takeover_abandoned", code=code, reason=reason, backoff=backoff)
        try:
            _step("releasing the lock", lambda: self.loop.guard("releasing the lock", release))
            _step("counting the transition", lambda: self.metrics.transition(code))
        finally:
            self.lease.revoke()
            self.state.lock_read_at = float("-inf")
            self.state.lock_free_since = None
            # Only what may pass by itself is retried early; a previous active nobody
            # can fence, an epoch past the ceiling, this node's own marker: an operator's.
            passing = code in ("fence_failed", "transition_failed")
            self.back_off(time.monotonic(), backoff, failed_takeover=passing)
            # FENCING|PROMOTING -> STANDBY: lock released, nothing started
            _step(
                "publishing the role",
                lambda: self.loop.set_role(Role.STANDBY, f"takeover abandoned: {reason}"),
            )

    def back_off(self, now: float, backoff: float, *, failed_takeover: bool) -> None:
        """Keep out of contention for `backoff` seconds from `now`. After a failed
        takeover, the node may retry early while nobody serves (decision.early_retry):
        T after the first failure, doubling with each further one. A further one
        fails within a back-off of the previous one's end, as the retries of a node
        that tries again whenever it may do; a failure after a longer pause (the node
        was unhealthy, say) starts again at T."""
        state = self.state
        if failed_takeover and backoff > 0:
            further = now < state.backoff_until + backoff
            in_a_row = state.failed_takeovers + 1 if further else 1
            T = self.config.zookeeper.session_timeout  # noqa: N806 - the design's name
            state.failed_takeovers = in_a_row
            state.early_retry_at = now + early_retry(in_a_row, T, backoff)
        else:
            state.failed_takeovers, state.early_retry_at = 0, None
        state.backoff_until = now + backoff

    def _epoch(self, plan: EpochPlan) -> int | None:
        """The planned epoch, or None once the takeover is abandoned: when no epoch
        is left below the ceiling, or when this node's own marker refuses the
        epoch (it could only fence the peers, then fail its first start)."""
        self.state.zookeeper_epoch = max(self.state.zookeeper_epoch, plan.zookeeper)
        for f in plan.ignored:
            log.critical(
                "epoch_floor_ignored",
                member=f.node,
                field=f.what,
                epoch=f.epoch,
                zookeeper_epoch=plan.zookeeper,
                hint="far above every epoch in ZooKeeper: a made-up fence or a poisoned "
                "record, not followed; a fence marker this high keeps its node from "
                "serving until an operator removes it",
            )
        if plan.epoch is None:
            log.critical(
                "epoch_exhausted",
                reason=plan.why,
                zookeeper_epoch=plan.zookeeper,
                hint="no takeover is possible: find where the epoch was made up "
                "(failoverctl status, history, the nodes' fence markers)",
            )
            self.hooks.fire("epoch_exhausted", reason=plan.why)
            self.abandon("epoch_exhausted", plan.why, self.config.flap.backoff)
            return None
        if self.marker.blocks(plan.epoch):
            why = f"this node's fence marker refuses epoch {plan.epoch}"
            self.abandon("fenced", why, self.config.flap.backoff)
            return None
        return plan.epoch

    # -- demotion: stop resources -> breadcrumb clean -> release ----------------------

    def demote(self, d: Decision) -> None:
        """Stop resources in reverse -> breadcrumb clean -> release. Total: each step
        may fail on its own, and the node still ends in STANDBY without a lease.
        The stop is graceful, or a fence's kill when the node has lost its right
        to serve (a lost lease or lock, a fence: decision.py, stop_is_fence)."""
        self._expect(Role.ACTIVE, Role.PROMOTING, Role.FENCING, Role.DEMOTING)
        release = lambda: self.coord.release_lock(self.lease, self.op_timeout)  # noqa: E731
        started = time.monotonic()
        epoch = self.state.epoch
        clean = False
        backoff = d.backoff
        # A node that lost its right to serve kills rather than stops (decision.py).
        fast = stop_is_fence(d.code, self.lease.valid())
        # A takeover cut short (a start failed, a step raised): nothing served yet.
        failed_takeover = self.state.role in (Role.FENCING, Role.PROMOTING)
        self.resource_watch.unwatch()  # stopping on purpose from here on
        # Fences of any epoch are welcome again (never raises).
        _step("clearing the active epoch", self.marker.clear_active)
        try:
            # ACTIVE|PROMOTING|FENCING -> DEMOTING
            self.loop.set_role(Role.DEMOTING, d.reason)
            if self.abandoned.pending:
                # An abandoned start may still complete. Before the lock goes: hold
                # the fence lock (our own fence-self cannot be trusted now) and kill
                # whatever of it is still there; we will not be clean.
                _step("holding the fence lock", self.abandoned.hold_fence_lock)
                _step(
                    "killing abandoned processes",
                    partial(self.abandoned.kill_leftovers, by_cgroup=False),
                )
            tag, env = tagged(self.loop.resource_env(epoch))
            to_stop, known = self.leftovers()
            budget = stop_budget(to_stop)
            try:
                failures = self.loop.await_work(
                    stop_all, to_stop, env, fast, timeout=budget, abandon=(tag, "stop")
                )
            except TimeoutError:
                failures = ["stop timed out"]
            except Exception as e:  # noqa: BLE001 - cannot tell what runs: not stopped
                failures = [f"stopping failed: {type(e).__name__}: {e}"]
            if self.abandoned.pending:
                # The stop itself may have been given up on: the fence lock before the
                # lock goes, since the peer fences us as soon as it sees the lock free.
                _step("holding the fence lock", self.abandoned.hold_fence_lock)
            if failures:
                # A stop failed: never clean; the node stays out of contention (dirty)
                # and the next active fences it.
                self.loop.mark_dirty(failures)
            elif known and epoch is not None and self.lease.valid() and not self.abandoned.pending:
                # Clean only with the lease still ours (then no peer can hold it yet),
                # nothing abandoned that may still start behind our back, and a
                # readable record of what we started (else we cannot tell it stopped).
                clean = bool(
                    _step(
                        "marking the breadcrumb clean",
                        lambda: self.loop.guard(
                            "marking the breadcrumb clean",
                            lambda: self.coord.mark_clean(epoch, self.op_timeout),
                        ),
                    )
                )
            _step("releasing the lock", lambda: self.loop.guard("releasing the lock", release))
            if not failures and known and not self.abandoned.pending:
                # After the release: it must not delay the peer's takeover.
                _step("clearing the resources record", self.clear_started)
        except Exception as e:  # noqa: BLE001 - demote is the failure edge: it never raises
            log.critical("demotion_step_failed", error=f"{type(e).__name__}: {e}", exc_info=e)
            # Whether everything stopped is unknown: not clean, not contending.
            failure = f"demotion failed: {type(e).__name__}: {e}"
            _step("marking dirty", lambda: self.loop.mark_dirty([failure]))
            _step("releasing the lock", lambda: self.loop.guard("releasing the lock", release))
        finally:
            self.lease.revoke()
            self.state.lock_read_at = float("-inf")
            self.state.lock_free_since = None
            now = time.monotonic()
            if d.code in ("health", "resource_lost"):
                # Both count towards the flap limit (decision.py says why).
                self.state.health_demotions.append(now)
            handed_to = None
            if d.code == "switchover" and self.state.control.switchover is not None:
                # Until the request would expire (failoverd/node/requests.py: never
                # longer than switchover.timeout, whatever the request itself says).
                life = min(self.state.control.switchover.timeout, self.config.switchover.timeout)
                backoff = max(backoff, life)
                self.state.requests_done.add(self.state.control.switchover.id)
                handed_to = self.state.control.switchover.to or ""  # ends early: switchover.py
            self.back_off(now, backoff, failed_takeover=failed_takeover)
            self.state.handover = (
                None if handed_to is None else (handed_to, self.state.backoff_until)
            )
            self.state.epoch = None
            _step("leaving active health checks", lambda: self.health.set_active(False))
            reason = d.reason
            if self.abandoned.pending:
                reason = f"{reason}; {self.abandoned.reason()}"
            # DEMOTING -> STANDBY (also when a step above raised: never stay DEMOTING)
            _step("publishing the role", lambda: self.loop.set_role(Role.STANDBY, reason))
        took = now - started
        _step("counting the transition", lambda: self.metrics.transition(d.code or "demote"))
        log.info(
            "demoted",
            epoch=epoch,
            code=d.code,
            reason=d.reason,
            stop="kill" if fast else "graceful",
            clean=clean,
            took_ms=round(took * 1000),
            backoff=backoff,
        )
        _step(
            "writing history",
            lambda: self.loop.record_history("demoted", f"{d.reason}; clean={clean}"),
        )
        _step("queueing hooks", lambda: self.hooks.fire("demoted", epoch=epoch, reason=d.reason))


def _wait_out(seconds: float, lease_valid: Callable[[], bool]) -> bool:
    """Sleep `seconds` while this node's own lease stays valid: a node that lost its
    lease meanwhile may no longer act on anyone's behalf (as the fence chain)."""
    until = time.monotonic() + seconds
    while (now := time.monotonic()) < until:
        if not lease_valid():
            return False
        time.sleep(min(0.1, until - now))
    return lease_valid()


def resource_timeout(res: Any) -> float:
    # Every resource has its configured per-call timeout.
    return float(getattr(res, "timeout", 30.0))


def stop_budget(resources: list[Any]) -> float:
    # `failoverd --check` holds the same sum against failoverd.service's
    # TimeoutStopSec (config/timing.py, shutdown_time).
    return sum(resource_timeout(r) for r in resources) + STOP_SLACK


def _step(what: str, fn: Callable[[], T]) -> T | None:
    """One step of a failure path: its own failure is logged and does not stop
    the steps after it (a failed release must not leave the role DEMOTING)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - see docstring
        log.error("transition_step_failed", step=what, error=f"{type(e).__name__}: {e}")
        return None
