"""The daemon: gathers observations, asks `decision.decide`, carries the answer out.

The main loop owns every transition. Blocking work (fencing, resource start and
stop) runs on one worker thread while the main loop waits with a deadline and keeps
petting the watchdog; the lease is renewed on its own thread (coordination.LeaseKeeper).

Restart safety: on start-up the daemon first stops every local resource (they may
be left from a crash or a restart on the active) and only then becomes a standby.
"Every" is what the config file names and what the last run recorded before it
started them (resources/started.py): the file may have been edited since
(failoverd/node/leftovers.py). What the node publishes is in publish.py.
Stopping the daemon on the active is a planned handover: it stops the resources,
marks the breadcrumb clean and releases the lease, so a peer takes over without
fencing.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import structlog

from failoverd import __version__
from failoverd.config import Config
from failoverd.config.timing import HOOKS_GRACE, call_timeout
from failoverd.fencing.chain import build_fence_chain
from failoverd.fencing.lease_wait import PublishedWatchdogs
from failoverd.fencing.marker import FenceMarker
from failoverd.fencing.readiness import FenceReadiness
from failoverd.health import HealthMonitor
from failoverd.node import notify
from failoverd.node.confirmation import withdrawal
from failoverd.node.decision import (
    Act,
    Decision,
    Observation,
    Role,
    active_member,
    decide,
    marker_anomaly,
    others_serving,
    priority_wait,
)
from failoverd.node.leftovers import Leftovers
from failoverd.node.membership import MembershipRecord
from failoverd.node.notify import Watchdog
from failoverd.node.operator_audit import OperatorAudit, is_recorder
from failoverd.node.operator_audit import when as when_text
from failoverd.node.publish import Publisher
from failoverd.node.recent import RecentIds
from failoverd.node.requests import FAILOVER, SWITCHOVER, Requests, check_requests, clip
from failoverd.node.schedule import Due, due
from failoverd.node.state import NodeState
from failoverd.node.switchover import handover_done
from failoverd.node.transitions import Transitions
from failoverd.observe import hooks
from failoverd.observe.endpoints import StatusServer, loop_stale_after
from failoverd.observe.hooks import HookRunner
from failoverd.observe.metrics import Metrics
from failoverd.release import commit
from failoverd.resources.abandoned import (
    RECORD_FILE,
    AbandonedWork,
    service_cgroup,
)
from failoverd.resources.base import prepare_all
from failoverd.resources.build import build_resources
from failoverd.resources.started import RecordUnreadable, StartedRecord, differences, stop_order
from failoverd.resources.watch import ResourceWatch
from failoverd.zk import session_checks
from failoverd.zk.coordinator import CoordinationError, Coordinator
from failoverd.zk.lease import LocalLease
from failoverd.zk.lease_keeper import LeaseKeeper, renewal_interval
from failoverd.zk.znodes import Control, HistoryEntry, MemberStatus, now_iso

log = structlog.get_logger("failoverd.node.daemon")
T = TypeVar("T")

TICK = 0.1  # main loop period while a timer matters (back-off, priority delay)
IDLE_TICK = 0.5  # ... and when nothing is pending (events wake it at once)
CONTROL_REFRESH = 2.0  # re-read control at least this often, besides its watch
MEMBERS_REFRESH = 0.5
MEMBERS_LEARN = 5.0
HISTORY_PRUNE_EVERY = 20  # appends between prunings of history/
ANY_EPOCH = sys.maxsize  # marker.blocks(ANY_EPOCH) is true only for an unreadable marker


class Daemon:
    """One node: the loop, its collaborators and its state (`NodeState`).

    The transitions call back through `transitions.NodeLoop`: set_role, guard,
    await_work, resource_env, record_history, mark_dirty, clear_requests."""

    def __init__(self, config: Config):
        self.config = config
        self.node = config.node.name
        # Role, epoch, back-off, the lock as last read...: shared with the transitions.
        self.state = NodeState()
        zk = config.zookeeper
        self.op_timeout = call_timeout(zk.session_timeout)  # deadline of one ZooKeeper call
        self.events: queue.Queue[str] = queue.Queue()
        self.coord = Coordinator(config, self._on_zk_event)
        self.lease = LocalLease(zk.session_timeout, zk.lease_margin)
        self.keeper = LeaseKeeper(
            self.coord,
            self.lease,
            renewal_interval(zk.session_timeout),
            lambda: self.events.put("lease_lost"),
        )
        self.health = HealthMonitor(
            config.health,
            on_change=lambda *_: self.events.put("health"),
            env={"FAILOVERD_CLUSTER": config.cluster, "FAILOVERD_NODE": self.node},
        )
        self.resources = build_resources(config.resources)
        # What each member last published about its watchdog device (lease-wait).
        self.published_watchdogs = PublishedWatchdogs()
        self.fence_chain = build_fence_chain(config, self.published_watchdogs)
        self.marker = FenceMarker(config.node.state_dir)
        self.started = StartedRecord(config.node.state_dir)
        self.membership = MembershipRecord(config.node.state_dir, config.cluster_path)
        self.watchdog = Watchdog(config.watchdog)
        self.metrics = Metrics(config.metrics, self.node, config.cluster)
        self.readiness = FenceReadiness(
            config,
            lambda *_: self.events.put("fence_ready"),
            self.metrics.set_fence_ready,
            published=self.published_watchdogs,  # lease-wait's readiness
        )
        self.fence_chain.known_dead = self.readiness.known_dead
        # /active, /standby, /health, /status and /metrics: answered from snapshots.
        self.http = StatusServer(
            config.metrics, self.metrics.render, loop_stale_after(IDLE_TICK, self.op_timeout)
        )
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker")
        self.hooks = HookRunner(config.hooks, config.cluster, self.node)  # after transitions
        hooks.install(self.hooks)
        # Swept by tag, and by the service's cgroup when this daemon is a systemd
        # service (resources/abandoned.py says why both).
        self.abandoned = AbandonedWork(
            self.marker.lock_path,
            Path(config.node.state_dir) / RECORD_FILE,
            cgroup=service_cgroup(),
        )
        self.resource_watch = ResourceWatch(
            self.resources, lambda: self.events.put("resource_lost")
        )
        self.transitions = Transitions(
            self,
            self.state,
            config=config,
            op_timeout=self.op_timeout,
            coord=self.coord,
            lease=self.lease,
            fence_chain=self.fence_chain,
            marker=self.marker,
            started=self.started,
            resources=self.resources,
            resource_watch=self.resource_watch,
            abandoned=self.abandoned,
            health=self.health,
            metrics=self.metrics,
            hooks=self.hooks,
        )
        self.leftovers = Leftovers(
            self,
            self.state,
            transitions=self.transitions,
            started=self.started,
            abandoned=self.abandoned,
            watchdog=self.watchdog,
            hooks=self.hooks,
        )

        self.session: int | None = None  # session the tree/member/watches were set up in
        self.watching = False
        self.audit = OperatorAudit(self.node)
        self.exit_code = 0
        self.members: dict[str, MemberStatus | None] = {}
        self.confirmations_withdrawn: set[str] = set()  # fence confirmations judged gone
        self.confirmation_seen: tuple[str, float] = ("", 0.0)  # its id, the control read
        self.members_read_at = float("-inf")
        self.peer_priority: dict[str, int] = {}  # learned from member status
        self.last_decision: Decision | None = None
        self.stopping = threading.Event()
        self.history_written = 0
        self.ready = False
        # "<request id>:<code>" of each verdict on a request already logged (bounded:
        # the ids come from `control`, which operators write).
        self.verdicts_logged = RecentIds()
        # The member znode, the HTTP view and the metrics (failoverd/node/publish.py).
        self.publisher = Publisher(
            self.state,
            config=config,
            coord=self.coord,
            lease=self.lease,
            marker=self.marker,
            membership=self.membership,
            health=self.health,
            readiness=self.readiness,
            watchdog=self.watchdog,
            http=self.http,
            metrics=self.metrics,
            observe=self._observe,
            members=lambda: self.members,
            read_timeout=self._read_timeout,
        )

    def _on_zk_event(self, event: str) -> None:
        """kazoo's thread: never block. A reconnect renews the lease at once instead
        of at the keeper's next tick: after a ZooKeeper leader dies, the new quorum
        may take most of the lease to form, and every millisecond counts."""
        self.events.put(event)
        if event == "zk_connected" and hasattr(self, "keeper"):
            self.keeper.wake.set()

    # -- lifecycle ------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        self.http.start()
        self.set_role(Role.INIT, "starting")
        log.info(
            "started",
            version=__version__,
            commit=commit() or "unknown",
            session_timeout=self.config.zookeeper.session_timeout,
        )
        self.leftovers.stop_leftovers()
        prepare_all(self.resources)  # off the promotion path (resources.prepare_all)
        if self.abandoned.pending:
            # Unclean since before a restart: our fence-self must not vouch for us.
            self.abandoned.hold_fence_lock()
        self.health.start()
        self.hooks.start()
        self.coord.start()
        self.keeper.start()
        self.readiness.start()
        self.resource_watch.start()
        # Arm the watchdog device before the first cycle: a node contends only with
        # its device armed (Observation.watchdog_problem), and a peer's lease-wait
        # trusts only what the member status then says about it.
        self._pet()
        self.set_role(Role.STANDBY, "started")
        try:
            while not self.stopping.is_set():
                self._wait_for_events()
                if self.stopping.is_set():
                    break
                self.cycle()
        finally:
            self._shutdown()
        return self.exit_code

    def cycle(self) -> None:
        """One loop cycle: observe -> decide -> act (step), with the failure path."""
        try:
            self.step()
        except Exception:  # noqa: BLE001 - a bug must not kill the loop that demotes
            # The next cycle re-observes everything from scratch; meanwhile the
            # lease rule must hold even without an observation.
            log.exception("step_failed", role=str(self.state.role))
            self._after_failed_step()
            time.sleep(TICK)

    def _after_failed_step(self) -> None:
        """A step raised before it could decide (a poisoned znode, a bug). An active
        whose local lease ran out demotes anyway, and a node left in a transitional
        role is brought back to standby: decide() is not needed for either."""
        transitional = self.state.role in (Role.FENCING, Role.PROMOTING, Role.DEMOTING)
        if self.state.role is Role.ACTIVE and not self.lease.valid():
            d = Decision(
                Act.DEMOTE,
                "demoting: the local lease ran out (and a loop step fails)",
                "lease_lost",
            )
        elif transitional:
            d = Decision(
                Act.DEMOTE,
                f"demoting: a loop step failed in {self.state.role}",
                "transition_failed",
                backoff=self.config.flap.backoff,
            )
        else:
            return
        try:
            self._demote(d)
        except Exception:  # noqa: BLE001 - demote is total; this is the last guard
            log.exception("demote_failed", role=str(self.state.role))

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            self.stopping.set()
            self.events.put("stop")

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, lambda *_: self.events.put("reload"))

    def _shutdown(self) -> None:
        notify.stopping()
        if self.state.role in (Role.ACTIVE, Role.PROMOTING, Role.FENCING):
            self._demote(Decision(Act.DEMOTE, "demoting: failoverd is stopping", "shutdown"))
        self.set_role(Role.STOPPED, "stopped")
        self.keeper.stop()
        self.readiness.stop()
        self.resource_watch.stop()
        self.health.stop()
        self.coord.close()
        self.watchdog.close(clean=not self.state.dirty and not self.abandoned.pending)
        self.worker.shutdown(wait=False, cancel_futures=True)
        self.http.close()
        self.hooks.stop(HOOKS_GRACE)  # queued hooks (e.g. this demotion's) get a few seconds
        log.info("stopped", dirty=self.state.dirty)

    def _idle_wait(self) -> float:
        """How long the loop may sleep when nothing happens. Every change of the
        lock, the control znode, health or the connection wakes it at once; time
        alone matters only for the lease running out, back-offs, delays and the
        watchdog, so the loop ticks fast only while one of those is near."""
        waits = [IDLE_TICK]
        if self.lease.session is not None:
            waits.append(self.lease.remaining() + 0.005)
        state = self.state
        timed = state.backoff_until > time.monotonic() or state.lock_holder is None
        busy = state.dirty or self.abandoned.pending
        # A scheduled switchover or a fence confirmation waits for no tick of a standby.
        pending = replace(state.control, scheduled=None, fence_confirmed=None) != Control()
        if state.role is not Role.ACTIVE and (timed or pending or busy):
            waits.append(TICK)
        for interval in (self.watchdog.systemd_interval, self.watchdog.device_interval):
            if interval:
                waits.append(interval / 2)
        return max(0.005, min(waits))

    def _wait_for_events(self) -> set[str]:
        got: set[str] = set()
        try:
            got.add(self.events.get(timeout=self._idle_wait()))
            while True:
                got.add(self.events.get_nowait())
        except queue.Empty:
            pass
        if "lock_changed" in got or any(e.startswith("zk_") for e in got) or "lease_lost" in got:
            self.state.lock_read_at = float("-inf")
        if any(e in got for e in ("zk_suspended", "zk_lost")):
            # While disconnected we cannot see who held the lock; lease-wait must
            # count from a time this node saw it free again.
            self.state.lock_free_since = None
            if self.state.role is Role.STANDBY:  # a takeover may follow: know the fence paths
                self.readiness.zookeeper_lost()
        elif "zk_connected" in got:
            self.readiness.zookeeper_back()  # what was probed while cut off is stale
        if "control_changed" in got:
            self.state.control_read_at = float("-inf")
        if "reload" in got:
            self._reload()
        return got

    def _reload(self) -> None:
        """SIGHUP: re-read the config. Only logging is applied live; everything else
        shapes the safety argument (timeouts, fencing, resources) and needs a restart,
        which on the active is a clean handover."""
        from dataclasses import fields

        from failoverd.config import ConfigError, load_config
        from failoverd.observe.log import configure_logging

        try:
            new = load_config(self.config.path)
        except ConfigError as e:
            log.error("reload_failed", problems=e.problems, hint="keeping the running config")
            return
        changed = [
            f.name
            for f in fields(new)
            if f.name not in ("log", "notes", "path")
            and getattr(new, f.name) != getattr(self.config, f.name)
        ]
        configure_logging(new.log, self.node, new.cluster)
        self.config = replace(self.config, log=new.log)
        log.info("reloaded", applied=["log"], needs_restart=changed)
        self._warn_resources_differ(new)

    def _warn_resources_differ(self, new: Config) -> None:
        """Until the restart, this daemon starts and stops the resources it read at
        its start, while fence-self and a restart's cleanup also stop the file's:
        say so when they differ, naming both sides (a timeout alone is no difference)."""
        try:
            recorded = self.started.read() or ()
        except RecordUnreadable:
            recorded = ()  # the record's own problem is reported where it is used
        running = stop_order(recorded, self.config.resources)
        running_only, file_only = differences(running, new.resources)
        if running_only or file_only:
            log.warning(
                "resources_differ_from_running",
                running_only=running_only,
                file_only=file_only,
                hint="until failoverd restarts it keeps starting and stopping the running "
                "resources; fence-self and the start-up cleanup stop both",
            )

    # -- one loop cycle ---------------------------------------------------------

    def step(self) -> None:
        now = time.monotonic()
        self._refresh(now)
        obs = self._observe(now)
        self._log_ignored_requests(obs.requests)
        d = decide(obs)
        if not d.same_as(self.last_decision):
            # One line per decision: a back-off or priority delay re-decides every
            # tick with less time left, which is the same decision (Decision.gist).
            log.info("decided", act=str(d.act), reason=d.reason, role=str(self.state.role))
            if d.code == "flap_limit":
                self.hooks.fire("flap_limit", epoch=self.state.epoch, reason=d.reason)
        self.last_decision = d
        if d.act is Act.CONTEND:
            self._take_over(d)
        elif d.act is Act.DEMOTE:
            self._demote(d)
        elif d.act is Act.RELEASE_STRAY_LOCK:
            self._try(
                "releasing a stray lock", lambda: self.coord.release_stray_lock(self.op_timeout)
            )
            self.state.lock_read_at = float("-inf")
        settled = self.state.role in (Role.STANDBY, Role.ACTIVE)
        if self.history_written >= HISTORY_PRUNE_EVERY and settled:
            if self._try("pruning history", lambda: self.coord.prune_history(self._read_timeout())):
                self.history_written = 0
        self.leftovers.tend(now)  # dirty, an unreadable record, abandoned work
        if not self.ready and self.session is not None:
            # systemd readiness once the initial role is known: connected, and
            # either standing by behind a holder or active.
            notify.ready(f"{self.state.role}: {self.state.reason}")
            self.ready = True
        self._pet()
        self.publisher.report()

    def _refresh(self, now: float) -> None:
        """Bring the cached view of ZooKeeper up to date (each read has a deadline)."""
        if not self.coord.connected:
            return
        session = self.coord.session_id
        if session != self.session:
            # A new session: whatever we saw of the lock in the old one is stale.
            self.state.lock_free_since = None
            if not self._try("setting up the session", self._setup_session):
                return
            self.session = session
        # The active's own lock is watched by the lease keeper; the others poll it
        # besides its watch, in case a watch event was lost with a connection.
        stale = now - self.state.lock_read_at > self.config.zookeeper.session_timeout / 4
        if stale and self.state.role is not Role.ACTIVE:
            res = self.guard("reading the lock", lambda: self.coord.read_lock(self.op_timeout))
            if res is not None:
                self.state.lock_holder, self.state.lock_owner, _ = res
                self.state.lock_read_at = now
                self._end_handover_backoff(now)
                if self.state.lock_holder is None:
                    # Counted from the answer, not from `now` (before the request):
                    # the lock may have vanished while the read was on its way.
                    self.state.lock_free_since = self.state.lock_free_since or time.monotonic()
                else:
                    self.state.lock_free_since = None
        if now - self.state.control_read_at > CONTROL_REFRESH:
            res2 = self.guard(
                "reading control", lambda: self.coord.read_control(self._read_timeout())
            )
            if res2 is not None:
                self.state.control, _ = res2
                self.state.control_read_at = now
                self.metrics.set_maintenance(self.state.control.maintenance)
                for req in (self.state.control.switchover, self.state.control.failover):
                    if req is not None and req.id not in self.state.requests_seen:
                        self.state.requests_seen[req.id] = now
                        log.info("operator_request_seen", id=req.id, to=req.to, timeout=req.timeout)
                self._record_operator_actions()
        if self.state.role is Role.ACTIVE and self.state.control.scheduled is not None:
            self._scheduled_switchover()
        if self.state.role is Role.ACTIVE:
            # A switchover's target is judged by its member status: read it fresh.
            sw = self.state.control.switchover
            wanted = not self.health.healthy or (
                sw is not None and sw.id not in self.state.requests_done
            )
            wanted = wanted or self.resource_watch.lost is not None  # is a peer ready?
            period = MEMBERS_REFRESH if wanted else float("inf")
        else:
            # A standby learns its peers' priorities while they are alive, so that
            # after an active's death it knows nobody preferred is left.
            period = MEMBERS_REFRESH if self.state.lock_holder is None else MEMBERS_LEARN
        if now - self.members_read_at > period:
            res3 = self.guard(
                "reading members", lambda: self.coord.read_members(self._read_timeout())
            )
            if res3 is not None:
                # Before the re-probes below: lease-wait's is judged by what they published.
                self.published_watchdogs.saw(res3)
                for name in set(res3) - {n for n, m in self.members.items() if m is not None}:
                    if name != self.node and res3[name] is not None:  # (re)joined: re-probe
                        self.readiness.probe_soon(name)
                self.members, self.members_read_at = res3, now
                self._end_early_retry(res3)
                served = [m.epoch for m in res3.values() if m is not None and m.epoch is not None]
                self.state.zookeeper_epoch = max([self.state.zookeeper_epoch, *served])
                for name, m in res3.items():
                    if m is not None:
                        self.peer_priority[name] = m.priority
        self._withdraw_confirmation()

    def _withdraw_confirmation(self) -> None:
        """An operator's word that a node is down stands only while nobody sees it
        (node/confirmation.py `withdrawal`): once its member znode is found, or its
        own daemon reads control, the word is removed, so that a later takeover
        fences the node even if it has dropped off ZooKeeper again by then."""
        conf = self.state.control.fence_confirmed
        if conf is None or conf.id in self.confirmations_withdrawn:
            return
        if self.confirmation_seen[0] != conf.id:
            self.confirmation_seen = (conf.id, self.state.control_read_at)
        # Only members read since the confirmation was first seen count: an older read
        # may show the node from before it went down (failoverctl refused the word
        # while its member znode existed; this daemon's read may be older than that).
        fresh = self.members if self.members_read_at >= self.confirmation_seen[1] else {}
        why = withdrawal(conf, self.node, fresh)
        if why is None:
            return
        removed = self.guard(
            "withdrawing the fence confirmation",
            lambda: self.coord.withdraw_fence_confirmation(conf.id, self._read_timeout()),
        )
        if removed is None:
            return  # ZooKeeper trouble: tried again on the next loop
        # Removed by this write, or already gone or replaced: judged no more either way
        # (a replacing one has another id and is judged on its own).
        self.confirmations_withdrawn.add(conf.id)
        self.state.control_read_at = float("-inf")  # read control again now
        if removed:
            log.warning("fence_confirmation_withdrawn", target=conf.node, id=conf.id, reason=why)
            self.record_history(
                "fence_confirmation_withdrawn",
                f"the confirmation that {conf.node} is down (by {conf.by or '?'} at {conf.at}) "
                f"is withdrawn: {why}; a takeover fences {conf.node} again",
            )

    def _end_handover_backoff(self, now: float) -> None:
        """The switchover's back-off (only that one, not one set since) has done its job
        once the target holds the lease."""
        state = self.state
        if state.handover is None or state.handover[1] != state.backoff_until:
            return
        if handover_done(state.handover[0], state.lock_holder, self.node):
            log.info("switchover_backoff_ended", holder=state.lock_holder)
            state.backoff_until, state.handover = min(state.backoff_until, now), None

    def _end_early_retry(self, members: dict[str, MemberStatus | None]) -> None:
        """Another member served since this node's failed takeover: from here on a
        takeover would be a failover between live nodes, which waits out the full
        back-off (state.py, `early_retry_at`)."""
        if self.state.early_retry_at is None:
            return
        active = active_member(self.node, members)
        if active is not None:
            log.info("early_retry_cancelled", active=active)
            self.state.early_retry_at, self.state.failed_takeovers = None, 0

    def _setup_session(self) -> None:
        # The parents first: under one that anyone may create in, the cluster node
        # found (or about to be made) there proves nothing about who made it.
        self.coord.ensure_parents(self.op_timeout)
        if not session_checks.parents_closed(self.coord, self.op_timeout):
            self._refuse("a parent of the cluster's znode is open to anyone")
        self.coord.ensure_tree(self.op_timeout, self.membership.has_been_member())
        self._check_access()
        self.membership.joined()  # from now on a vanished tree reads as lost, not new
        if self.coord.world_writable(self.op_timeout):
            if self.config.zookeeper.auth is not None:
                log.critical(
                    "zookeeper_tree_open",
                    path=self.coord.root,
                    hint="zookeeper.auth is set but the tree is world-writable: it was created "
                    "without credentials; recreate it or fix its ACL (setAcl)",
                )
            else:
                log.warning(
                    "zookeeper_tree_open",
                    path=self.coord.root,
                    hint="anyone who can reach ZooKeeper can change the lease; set zookeeper.auth",
                )
        if not self.watching:
            self.coord.watch()
            self.watching = True
        self.publisher.forget_written()
        self.publisher.write_member()

    def _check_access(self) -> None:
        if not session_checks.tree_is_ours(self.coord, self.op_timeout):
            self._refuse("the cluster's ACL is not the expected one")
        zookeeper_epoch = session_checks.alert_marker_ahead(
            self.coord, self.marker, self.membership.seen_epoch, self.op_timeout
        )
        self.state.zookeeper_epoch = max(self.state.zookeeper_epoch, zookeeper_epoch)

    def _refuse(self, why: str) -> None:
        """Stop with exit 2 (a restart cannot fix it; an operator must) and end
        the session's setup here."""
        self.exit_code = 2
        self.stopping.set()
        self.events.put("stop")
        raise CoordinationError(why)

    def _record_operator_actions(self) -> None:
        recorder = is_recorder(
            self.node, self.state.role is Role.ACTIVE, self.state.lock_holder, self.members
        )
        changes = self.audit.changes(self.state.control, recorder)
        if not changes:
            return
        # Who made them: the request znodes, read after control (failoverctl writes
        # its request znode first). Unread, every change counts as a claim.
        requests = self.guard(
            "reading the request znodes",
            lambda: self.coord.operator_requests.read(self._read_timeout()),
        )
        for entry in self.audit.entries(
            changes, requests or {}, self.coord.control_mtime, self.state.epoch, time.monotonic()
        ):
            if self.coord.connected:
                self.coord.append_history(entry)
                self.history_written += 1

    def _read_timeout(self) -> float:
        """Deadline for ZooKeeper calls made from the main loop. While we hold the
        lease, the loop must never sit in a call for longer than a fraction of the
        lease margin, or a lapsed lease would be acted on late."""
        if self.state.role is Role.ACTIVE:
            return max(0.05, min(self.op_timeout, self.config.zookeeper.lease_margin / 4))
        return self.op_timeout

    def _requests(self, now: float) -> Requests:
        """The operator's requests as this node judges them (failoverd/node/requests.py).
        A forced failover may live as long as failoverctl gives one."""
        control, seen = self.state.control, self.state.requests_seen
        ids = [r.id for r in (control.switchover, control.failover) if r is not None]
        sw_life = self.config.switchover.timeout
        return check_requests(
            control,
            node=self.node,
            configured=self.config.member_names,
            members=self.members,
            now_wall=time.time(),
            bounds={SWITCHOVER: sw_life, FAILOVER: sw_life + self.config.zookeeper.session_timeout},
            seen_for={rid: now - seen.get(rid, now) for rid in ids},
            done=self.state.requests_done,
        )

    def _log_ignored_requests(self, requests: Requests) -> None:
        """Once per request and reason: what this node will not act on, and why."""
        for c in requests.ignored:
            key = f"{c.request.id}:{c.code}"
            if key in self.verdicts_logged:
                continue
            self.verdicts_logged.add(key)
            # Expiry is how every request ends that nobody served: no alarm.
            emit = log.info if c.code == "expired" else log.warning
            emit(
                "request_ignored",
                kind=c.kind,
                id=c.request.id,
                to=c.request.to,
                requested_by=clip(c.request.requested_by),
                requested_at=clip(c.request.requested_at),
                code=c.code,
                reason=c.problem,
            )

    def _observe(self, now: float) -> Observation:
        cfg = self.config
        requests = self._requests(now)
        window = cfg.flap.window
        while self.state.health_demotions and now - self.state.health_demotions[0] > window:
            self.state.health_demotions.popleft()
        if self.state.role is Role.ACTIVE:
            # Disconnected is not lost: the lease clock decides that. A *new* session
            # means the old one expired, and the lock with it.
            lock_is_ours = (
                self.lease.session is not None and self.lease.session == self.coord.last_session_id
            )
            fenced = self.state.epoch is not None and self.marker.blocks(self.state.epoch)
        else:
            owner = self.state.lock_owner
            lock_is_ours = owner is not None and owner == self.coord.session_id
            fenced = self.marker.blocks(ANY_EPOCH)
        anomaly = marker_anomaly(self.marker.published_epoch(), self.state.zookeeper_epoch)
        return Observation(
            now=now,
            node=self.node,
            role=self.state.role,
            connected=self.coord.connected and self.session is not None,
            lease_valid=self.lease.valid(),
            lease_remaining=self.lease.remaining(),
            lock_holder=self.state.lock_holder,
            lock_is_ours=lock_is_ours,
            fenced=fenced,
            healthy=self.health.healthy,
            maintenance=self.state.control.maintenance,
            backoff_until=self.state.backoff_until,
            lock_free_since=self.state.lock_free_since,
            priority_delay=self._priority_delay(),
            healthy_peer=self._healthy_peer(requests.switchover_to),
            switchover_to=requests.switchover_to,
            switchover_pending=requests.switchover_pending,
            failover_to=requests.failover_to,
            flap_limited=len(self.state.health_demotions) >= cfg.flap.max_failovers,
            dirty=self.state.dirty or self.abandoned.pending or bool(self.state.leftovers_unknown),
            dirty_reason=self.abandoned.reason()
            if self.abandoned.pending
            else self.state.leftovers_unknown,
            resource_lost=self.resource_watch.lost if self.state.role is Role.ACTIVE else None,
            flap_backoff=cfg.flap.backoff,
            early_retry_at=self.state.early_retry_at,
            member_serving=bool(others_serving(self.node, self.members)),
            watchdog_problem=self.watchdog.problem,
            marker_anomaly=anomaly if self.state.role is not Role.ACTIVE else "",
            requests=requests,
        )

    def _priority_delay(self) -> float:
        return priority_wait(
            (self.config.node.priority, self.node),
            self.config.node.priority * self.config.node.priority_delay,
            {p.name: self.members.get(p.name) for p in self.config.peers},
            set(self.peer_priority),
        )

    def _healthy_peer(self, target: str | None) -> bool:
        for name, m in self.members.items():
            if name == self.node or m is None or (target is not None and name != target):
                continue
            if m.healthy and m.role == Role.STANDBY and not m.maintenance:
                return True
        return False

    # -- transitions (failoverd/node/transitions.py holds the steps) ---------------------

    def _take_over(self, d: Decision) -> None:
        self.transitions.take_over(d)

    def _demote(self, d: Decision) -> None:
        self.transitions.demote(d)

    def mark_dirty(self, failures: list[str]) -> None:
        self.leftovers.mark_dirty(failures)  # failoverd/node/leftovers.py

    # -- helpers -------------------------------------------------------------

    def await_work(
        self,
        fn: Callable[..., T],
        *args: Any,
        timeout: float,
        abandon: tuple[str, str] | None = None,
    ) -> T:
        """Run blocking work on the worker thread; keep petting the watchdog while
        waiting (waiting on a bounded operation is progress). `abandon`: (tag, what)
        of a resource operation that makes the node unclean if it hangs."""
        future = self.worker.submit(fn, *args)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return future.result(timeout=TICK)
            except FutureTimeout:
                self._pet()
                if time.monotonic() > deadline:
                    log.critical(
                        "operation_hung", operation=getattr(fn, "__name__", "?"), timeout=timeout
                    )
                    # Abandon the stuck thread; later work gets a fresh one.
                    self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker")
                    if abandon is not None:
                        self.abandoned.add(abandon[0], abandon[1], timeout, future)
                    raise TimeoutError(
                        f"{getattr(fn, '__name__', 'operation')} hung for {timeout:g}s"
                    ) from None

    def guard(self, what: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except CoordinationError as e:
            log.warning("zookeeper_call_failed", operation=what, error=str(e))
            return None

    def _try(self, what: str, fn: Callable[[], Any]) -> bool:
        """Like guard, for calls whose result does not matter: True when it worked."""
        try:
            fn()
            return True
        except CoordinationError as e:
            log.warning("zookeeper_call_failed", operation=what, error=str(e))
            return False

    def _pet(self) -> None:
        # An active (or a node mid-takeover) pets only while its lease is valid.
        # A node whose resources would not stop pets no more either: the
        # watchdog is the last escalation (self-fence by reset).
        self.http.beat()  # the loop is alive (GET /health)
        if self.state.dirty or self.abandoned.stuck:
            return
        if self.state.role in (Role.INIT, Role.STANDBY, Role.STOPPED) or self.lease.valid():
            # Abandoned work pending: an operation given up on may still complete, so
            # this node's own stop cannot be trusted, and a peer's lease-wait counts on
            # this machine resetting within watchdog.timeout. So the device is left to
            # fire, as for a dirty node. systemd's watchdog is still petted: a daemon it
            # restarted would be as unclean (the record in the state dir) and would
            # stop sweeping for the leftovers meanwhile.
            self.watchdog.pet(device=not self.abandoned.pending)

    def resource_env(self, epoch: int | None) -> dict[str, str]:
        return {
            "FAILOVERD_CLUSTER": self.config.cluster,
            "FAILOVERD_NODE": self.node,
            "FAILOVERD_EPOCH": "" if epoch is None else str(epoch),
        }

    def set_role(self, role: Role, reason: str) -> None:
        if role is not self.state.role:
            log.info(
                "role_changed",
                previous=str(self.state.role),
                role=str(role),
                reason=reason,
                epoch=self.state.epoch,
            )
        self.state.role, self.state.reason = role, reason
        self.metrics.set_role(str(role))
        self.metrics.set_epoch(self.state.epoch)
        self.publisher.write_member()
        notify.status(f"{role}: {reason}")

    def record_history(self, event: str, reason: str) -> None:
        if self.coord.connected:
            self.coord.append_history(
                HistoryEntry(now_iso(), self.node, event, self.state.epoch, reason)
            )
            self.history_written += 1

    def _scheduled_switchover(self) -> None:
        """The active moves a scheduled switchover that has come due into `switchover`
        (or drops one long past its time): failoverd/node/schedule.py."""
        req = self.state.control.scheduled
        assert req is not None
        when = due(req, time.time(), self.config.switchover.timeout)
        if when is Due.WAIT:
            return
        res = self.guard("reading control", lambda: self.coord.read_control(self._read_timeout()))
        if res is None:
            return
        control, version = res
        if control.scheduled is None or control.scheduled.id != req.id:
            return
        if when is Due.MISSED:
            new = replace(control, scheduled=None)
            log.warning("scheduled_switchover_missed", id=req.id, to=req.to, at=req.at)
        elif control.switchover is not None or control.failover is not None:
            return  # another request is being served: the schedule waits its turn
        elif control.maintenance:
            return  # nobody would serve it now; it is dropped once past its window
        else:
            moved = replace(req, requested_at=now_iso(), at=None)
            new = replace(control, scheduled=None, switchover=moved)
            log.info("scheduled_switchover_due", id=req.id, to=req.to, at=req.at)
        if self._try(
            "starting the scheduled switchover",
            lambda: self.coord.write_control(new, version, self._read_timeout()),
        ):
            if when is Due.MISSED:
                self.record_history(
                    "switchover_missed",
                    f"the switchover to {req.to or 'any healthy standby'} scheduled for "
                    f"{when_text(req.at)} was more than {self.config.switchover.timeout:g}s "
                    "late: dropped, not carried out",
                )
        self.state.control_read_at = float("-inf")

    def clear_requests(self) -> None:
        """A new active has served the operator's request: remove it."""
        res = self.guard("reading control", lambda: self.coord.read_control(self._read_timeout()))
        if res is None:
            return
        control, version = res
        if control.switchover is None and control.failover is None:
            return
        cleared = control.without_requests()  # keeps maintenance and who set it
        self._try(
            "clearing the request",
            lambda: self.coord.write_control(cleared, version, self._read_timeout()),
        )
        self.state.control_read_at = float("-inf")
