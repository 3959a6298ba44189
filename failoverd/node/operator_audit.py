"""Operator actions into history, written by a daemon on the operator's behalf.

Operators may write only `control` and their own request znode (failoverd.zk.acl),
so they cannot append to history themselves. What they do travels in `control` —
why (`--reason`), when, and a name — and one daemon records it:

* the active (it holds the lease, so there is exactly one);
* with no active, the first configured member by name among those connected
  (every standby computes the same answer from the same member list).

**Who** is never taken from `control`: every operator may write it, so a name
there is what the writer claims. The name history records is the path of the
request znode that vouches for the change (zk/requests.py): only that operator's
credential can write it. A change no request znode vouches for (failoverctl of an
older release, or anyone writing `control` by hand) is recorded with its claim
marked: "alice (claimed, via control)". A request znode vouches for a change when
it lists the change (kind and ref), was written shortly before `control` (the
server's clock, for both), and this daemon has not credited that change before (a
copy of an old change written back into `control` is a claim, not a new action).

Each operator may put at most HISTORY_CAP entries into history per CAP_WINDOW
(claims via control share one allowance): history keeps a fixed number of
entries, and one operator churning requests must not push the real ones out.
What is over the cap is not recorded, with one log line per allowance.

Maintenance changes are recorded when a daemon sees the flag flip; the state it
finds at start-up is not a change. Requests are recorded once per request id.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from failoverd.node.recent import RecentIds
from failoverd.zk.acl import NODES_REQUEST
from failoverd.zk.znodes import (
    UNREADABLE_CONTROL,
    Control,
    HistoryEntry,
    MemberStatus,
    OperatorRequests,
    Request,
    now_iso,
)

log = structlog.get_logger(__name__)

HISTORY_CAP = 20  # history entries per operator (or for all claims via control) ...
CAP_WINDOW = 3600.0  # ... per this many seconds
CLAIMS = "(claims via control)"  # the allowance every unvouched change shares
# A request znode vouches for a change in control written at most this long
# after it (ms, ZooKeeper's own mtimes), or a little before it (a new leader's clock).
FRESH_MS = 120_000
SKEW_MS = 5_000


def is_recorder(
    node: str, active: bool, lock_holder: str | None, members: dict[str, MemberStatus | None]
) -> bool:
    if active:
        return True
    if lock_holder:
        return False  # the holder records (it is, or is about to be, active)
    connected = sorted({n for n, m in members.items() if m is not None} | {node})
    return connected[0] == node


@dataclass(frozen=True)
class Change:
    """One operator action seen in `control`, before we know who made it."""

    # maintenance_on, maintenance_off, switchover, failover, fence_confirmed,
    # switchover_scheduled, switchover_cancelled
    kind: str
    ref: str  # maintenance_since, or the request id
    claim: str  # the name control carries: what the writer says
    reason: str  # the history entry's reason

    @property
    def event(self) -> str:
        return f"{self.kind}_requested" if self.kind in ("switchover", "failover") else self.kind


class OperatorAudit:
    def __init__(self, node: str) -> None:
        self.node = node
        self._maintenance: tuple[bool, str, str] | None = None
        self._requests = RecentIds()
        self._credited = RecentIds()  # "kind ref" of changes a request znode vouched for
        self._recorded: dict[str, deque[float]] = {}  # allowance -> times recorded
        self._capped: set[str] = set()  # allowances whose cap was logged this window
        self._scheduled: Request | None = None  # the scheduled switchover last seen
        # Who vouched for a scheduled switchover, by its id: when it comes due, the
        # active moves it into `switchover` long after the operator's request znode
        # vouched for it, and the switchover is theirs.
        self._scheduled_by: dict[str, tuple[str, str]] = {}

    def changes(self, control: Control, recorder: bool) -> list[Change]:
        """What changed in `control` since the last call that this node records."""
        if control is UNREADABLE_CONTROL:
            return []  # logged as control_unreadable; nothing an operator did
        out: list[Change] = []
        key = (control.maintenance, control.maintenance_by, control.maintenance_since)
        if self._maintenance is not None and key != self._maintenance and recorder:
            state = "on" if control.maintenance else "off"
            reason = control.maintenance_reason or "(no reason given)"
            kind = f"maintenance_{state}"
            out.append(Change(kind, control.maintenance_since, control.maintenance_by, reason))
        self._maintenance = key
        for kind, req in (("switchover", control.switchover), ("failover", control.failover)):
            if req is None or req.id in self._requests:
                continue
            self._requests.add(req.id)
            if recorder:
                to = req.to or "any healthy standby"
                reason = f"to {to}" + (f": {req.reason}" if req.reason else "")
                out.append(Change(kind, req.id, req.requested_by, reason))
        out += self._scheduling(control, recorder)
        conf = control.fence_confirmed
        if conf is not None and f"confirm {conf.id}" not in self._requests:
            self._requests.add(f"confirm {conf.id}")
            if recorder:
                why = conf.reason or "(no reason given)"
                reason = f"{conf.node} is down (its term at epoch {conf.epoch}): {why}"
                out.append(Change("fence_confirmed", conf.id, conf.by, reason))
        return out

    def _scheduling(self, control: Control, recorder: bool) -> list[Change]:
        """A switchover scheduled, or one withdrawn before it came due."""
        out: list[Change] = []
        old, new = self._scheduled, control.scheduled
        self._scheduled = new
        if new is not None and (old is None or old.id != new.id):
            if recorder:
                at = when(new.at)
                reason = f"to {new.to or 'any healthy standby'} at {at}" + (
                    f": {new.reason}" if new.reason else ""
                )
                out.append(Change("switchover_scheduled", new.id, new.requested_by, reason))
        sw = control.switchover
        moved = sw is not None and old is not None and sw.id == old.id  # it came due
        if old is not None and (new is None or new.id != old.id) and not moved and recorder:
            reason = f"the switchover to {old.to or 'any healthy standby'} at {when(old.at)}"
            out.append(Change("switchover_cancelled", old.id, "", reason))
        return out

    def entries(
        self,
        changes: list[Change],
        requests: Mapping[str, tuple[OperatorRequests, int]],
        control_mtime: int | None,
        epoch: int | None,
        now: float,
    ) -> list[HistoryEntry]:
        """History entries for `changes`, each with who vouched for it, within the cap.
        `requests`: the request znodes (zk/requests.py read) and their mtimes."""
        out: list[HistoryEntry] = []
        for change in changes:
            by, allowance = self._attribute(change, requests, control_mtime)
            if self._allowed(allowance, now):
                out.append(
                    HistoryEntry(now_iso(), self.node, change.event, epoch, change.reason, by)
                )
        return out

    def _attribute(
        self,
        change: Change,
        requests: Mapping[str, tuple[OperatorRequests, int]],
        control_mtime: int | None,
    ) -> tuple[str, str]:
        """(the name history records, whose allowance the entry counts against)."""
        credit = f"{change.kind} {change.ref}"
        if credit not in self._credited and control_mtime is not None:
            fresh = {
                name: znode
                for name, znode in requests.items()
                if -SKEW_MS <= control_mtime - znode[1] <= FRESH_MS
            }
            found = vouched_by(change.kind, change.ref, fresh)
            if found is not None:
                self._credited.add(credit)
                if change.kind == "switchover_scheduled":
                    self._scheduled_by[change.ref] = found
                    while len(self._scheduled_by) > 16:
                        del self._scheduled_by[next(iter(self._scheduled_by))]
                return found
        if change.kind == "switchover" and change.ref in self._scheduled_by:
            # Come due: the operator who scheduled it vouched for it then.
            return self._scheduled_by.pop(change.ref)
        return claimed(change.claim), CLAIMS

    def _allowed(self, allowance: str, now: float) -> bool:
        times = self._recorded.setdefault(allowance, deque())
        while times and now - times[0] >= CAP_WINDOW:
            times.popleft()
        if len(times) < HISTORY_CAP:
            times.append(now)
            self._capped.discard(allowance)
            return True
        if allowance not in self._capped:
            self._capped.add(allowance)
            log.warning(
                "operator_history_capped",
                by=allowance,
                cap=HISTORY_CAP,
                window=CAP_WINDOW,
                hint="more operator actions than history may take from one operator: "
                "the excess is not recorded (the requests still take effect)",
            )
        return False


def when(at: float | None) -> str:
    """A scheduled time for history: ISO 8601 in UTC."""
    if at is None:
        return "once seen"
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def vouched_by(
    kind: str, ref: str, requests: Mapping[str, tuple[OperatorRequests, int]]
) -> tuple[str, str] | None:
    """(the name to record, the request znode) of the first request znode that
    lists this change, or None. Freshness is the caller's to judge."""
    if not ref:
        return None
    for name, (mine, _mtime) in sorted(requests.items()):
        for req in mine.recent:
            if (req.kind, req.ref) == (kind, ref):
                return _name(name, req.by), name
    return None


def claimed(claim: str) -> str:
    """A name only `control` carries: what its writer says, marked as such (a label
    that already says it is a claim, the nodes' "node:HOST (sudo user X, claimed)",
    gets the marker inside its parentheses)."""
    if claim.endswith(", claimed)"):
        return f"{claim[:-1]}, via control)"
    return f"{claim or 'unknown'} (claimed, via control)"


def _name(request_znode: str, label: str) -> str:
    """An operator's name is the request znode's name. The nodes' own request znode
    is written by root on a node, which names the host and sudo user it ran as."""
    if request_znode != NODES_REQUEST:
        return request_znode
    if label.startswith("node:") and label.endswith("claimed)"):
        return label
    return f"node:? ({label or 'unknown'}, claimed)"
