"""The node's mutable state that the daemon's loop and the transitions share.

The daemon owns one `NodeState` and hands it to `Transitions`; nothing else
writes it. Both run on the main loop's thread, one after the other (a transition
runs to completion inside one loop cycle), so the fields need no lock. Keeping
them in one place is what lets transitions.py be read without daemon.py: every
field a transition reads or writes is here, with who writes it and when.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from failoverd.node.decision import Role
from failoverd.node.recent import RecentIds
from failoverd.zk.znodes import Control


@dataclass
class NodeState:
    """What this node is and what it last saw of ZooKeeper.

    Who writes which field, and when:

    * `role`, `reason`: only the daemon's `set_role`, which also publishes them
      (log, metrics, member znode, systemd status). The transitions read `role`
      to check the edge they take; they move it only through `set_role`.
    * `epoch`: the transitions. A takeover sets it once its breadcrumb is written;
      a demotion clears it. The loop only reads it.
    * `backoff_until`: the transitions when a takeover is abandoned or a node
      demotes; the loop shortens it once a switchover's target holds the lease.
    * `failed_takeovers`, `early_retry_at`: the transitions when a takeover fails
      (the failures in a row, and when the node may retry early if nobody
      serves: decision.early_retry, Transitions.back_off); a promotion resets
      both. The loop resets them once another member is seen active: a takeover
      after that is a failover between live nodes, which waits out the full
      back-off.
    * `handover`: a demotion for a switchover sets it (its target, "" = any; the
      back-off it set); the loop clears it when that back-off ends early
      (failoverd/node/switchover.py).
    * `dirty`, `dirty_since`: the daemon's `mark_dirty` when resources would not
      stop (a demotion calls it); the loop clears `dirty` once a retry stops them.
    * `leftovers_unknown`: why this node cannot tell what it started before (its
      resources record is unreadable; failoverd/resources/started.py), "" when it
      can. `Transitions.leftovers` sets and clears it; the node does not contend
      while it is set (Observation.dirty).
    * `health_demotions`: a demotion for health or a lost resource appends its
      time; the loop drops the times older than the flap window.
    * The lock as last read (`lock_holder`, `lock_owner`, `lock_read_at`,
      `lock_free_since`): the loop when it reads the lock. Either side sets
      `lock_read_at` to -inf to have the lock read again, and the transitions
      reset `lock_free_since` when they win or give up the lock (lease-wait
      counts only from a time the lock is seen free after that).
    * `control`, `control_read_at`: the loop when it reads the control znode (and
      `clear_requests` to have it read again). The transitions read the switchover
      request from `control` when they demote for it.
    * `zookeeper_epoch`: the highest epoch seen in ZooKeeper itself (the breadcrumb
      on each new session, a takeover's plan, the members' epochs as the loop reads
      them); only ever raised. What this node's own floors are judged against
      (decision.marker_anomaly).
    * `requests_seen`: the loop, when a request first appears. `requests_done`:
      a demotion for a switchover adds the request it served.
    """

    role: Role = Role.INIT
    reason: str = "starting"
    epoch: int | None = None
    backoff_until: float = 0.0
    failed_takeovers: int = 0
    early_retry_at: float | None = None
    handover: tuple[str, float] | None = None
    dirty: bool = False
    dirty_since: float = 0.0
    leftovers_unknown: str = ""
    health_demotions: deque[float] = field(default_factory=deque)
    lock_holder: str | None = None
    lock_owner: int | None = None
    lock_free_since: float | None = None
    lock_read_at: float = float("-inf")
    control: Control = field(default_factory=Control)
    control_read_at: float = float("-inf")
    zookeeper_epoch: int = 0
    # Bounded: request ids come from `control`, which operators write.
    requests_seen: RecentIds = field(default_factory=RecentIds)
    requests_done: RecentIds = field(default_factory=RecentIds)
