"""What this node may have left running, and how it gets back to clean.

Restart safety starts here: before a node stands by, it stops every local resource
the config names and the last run recorded (`stop_leftovers`). Three things then
keep it out of contention until they are resolved, each worked on by the loop's
`tend` while the node stands by:

* resources that would not stop (`mark_dirty`; the node is dirty): retried every
  DIRTY_RETRY seconds; the watchdog is no longer petted meanwhile;
* an unreadable resources record (`NodeState.leftovers_unknown`): read again every
  DIRTY_RETRY seconds, and once an operator repaired it, what it names is stopped;
* abandoned work (failoverd/resources/abandoned.py): swept every SWEEP_INTERVAL.

The record is cleared only once everything stopped cleanly and no abandoned
operation may still complete: until then it is what says what may still run.

The seam to the loop: the node's shared state (`NodeState`), the collaborators
(passed in), and the loop's calls that transitions.py declares (`NodeLoop`).
"""

from __future__ import annotations

import time

import structlog

from failoverd.node.decision import Role
from failoverd.node.notify import Watchdog
from failoverd.node.state import NodeState
from failoverd.node.transitions import NodeLoop, Transitions
from failoverd.observe.hooks import HookRunner
from failoverd.resources.abandoned import SWEEP_INTERVAL, AbandonedWork
from failoverd.resources.base import stop_all
from failoverd.resources.started import RecordUnreadable, StartedRecord

# The daemon's logger: these lines were the daemon's and read the same as before.
log = structlog.get_logger("failoverd.node.daemon")

DIRTY_RETRY = 10.0  # retry stopping resources that failed to stop; re-read a bad record


class Leftovers:
    """Stops what a node may have left running and tracks whether it is clean."""

    def __init__(
        self,
        loop: NodeLoop,  # uses set_role, await_work and resource_env of it
        state: NodeState,
        *,
        transitions: Transitions,
        started: StartedRecord,
        abandoned: AbandonedWork,
        watchdog: Watchdog,
        hooks: HookRunner,
    ):
        self.loop = loop
        self.state = state
        self.transitions = transitions  # what to stop (leftovers) and clearing the record
        self.started = started
        self.abandoned = abandoned
        self.watchdog = watchdog
        self.hooks = hooks
        self.retry_at = 0.0  # when an unreadable record is read again

    def tend(self, now: float) -> None:
        """Once per loop cycle: retry what keeps the node unclean, when it is due."""
        if self.state.dirty and now - self.state.dirty_since > DIRTY_RETRY:
            self.stop_leftovers()
        elif (
            self.state.leftovers_unknown
            and self.state.role is Role.STANDBY
            and now >= self.retry_at
        ):
            self.retry_unknown(now)
        if (
            self.abandoned.pending
            and self.state.role is Role.STANDBY
            and now >= self.abandoned.next_sweep
        ):
            self.sweep_abandoned(now)

    def stop_leftovers(self) -> None:
        """Stop what the config names and what the last run recorded; once all of it
        stopped cleanly, nothing this node started runs: clear the record."""
        resources, known = self.transitions.leftovers()
        failures = stop_all(resources, self.loop.resource_env(None))
        if failures:
            self.mark_dirty(failures)
        elif self.state.dirty:
            log.warning("resources_stopped_after_failure")
            self.state.dirty = False
        if not failures and known and not self.abandoned.pending:
            try:
                self.transitions.clear_started()
            except (OSError, TimeoutError) as e:  # the next clean stop clears it
                log.error("resources_record_not_cleared", error=str(e))

    def retry_unknown(self, now: float) -> None:
        """An unreadable record keeps the node out of contention (it does not guess
        what runs). Not a dirty node, though: the watchdog is still petted, since a
        reset would not make the record readable. Once an operator has repaired or
        removed it, stop what it names and contend again."""
        self.retry_at = now + DIRTY_RETRY
        try:
            self.started.read()
        except RecordUnreadable:
            return
        self.stop_leftovers()

    def sweep_abandoned(self, now: float) -> None:
        """Work towards confirming that every abandoned operation is gone
        (failoverd/resources/abandoned.py); meanwhile the node reports why it is unclean."""
        self.abandoned.next_sweep = now + SWEEP_INTERVAL
        resources, known = self.transitions.leftovers()
        try:
            self.loop.await_work(
                self.abandoned.sweep,
                resources,
                self.loop.resource_env(None),
                timeout=sum(r.timeout for r in resources) * 2 + 5.0,
            )
        except TimeoutError:
            pass  # the next sweep tries again; the node stays unclean meanwhile
        if known and not self.abandoned.pending:  # confirmed: everything stopped
            try:
                self.transitions.clear_started()
            except (OSError, TimeoutError) as e:
                log.error("resources_record_not_cleared", error=str(e))
        reason = self.abandoned.reason() if self.abandoned.pending else "abandoned work gone"
        if reason != self.state.reason:
            self.loop.set_role(self.state.role, reason)

    def mark_dirty(self, failures: list[str]) -> None:
        """Resources would not stop: the node stays out of contention until they do."""
        first = not self.state.dirty  # the hook pages once per episode, not every retry
        self.state.dirty, self.state.dirty_since = True, time.monotonic()
        log.critical(
            "stop_failed",
            failures=failures,
            hint="this node will not contend; the next active will fence it",
            self_fence=self.watchdog.enabled,
        )
        if first:
            self.hooks.fire("stop_failed", epoch=self.state.epoch, reason="; ".join(failures))
