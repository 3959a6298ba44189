"""Operator actions into history, written by a daemon on the operator's behalf.

Operators may write only `control` (failoverd.zk.acl), so they cannot append to
history themselves. What they do travels in `control` instead — who (`by`:
their ZooKeeper credential's user, or SUDO_USER/USER), why (`--reason`) and when —
and one daemon records it:

* the active (it holds the lease, so there is exactly one);
* with no active, the first configured member by name among those connected
  (every standby computes the same answer from the same member list).

Maintenance changes are recorded when a daemon sees the flag flip; the state it
finds at start-up is not a change. Requests are recorded once per request id.
"""

from __future__ import annotations

from failoverd.node.recent import RecentIds
from failoverd.zk.znodes import UNREADABLE_CONTROL, Control, HistoryEntry, MemberStatus, now_iso


def is_recorder(
    node: str, active: bool, lock_holder: str | None, members: dict[str, MemberStatus | None]
) -> bool:
    if active:
        return True
    if lock_holder:
        return False  # the holder records (it is, or is about to be, active)
    connected = sorted({n for n, m in members.items() if m is not None} | {node})
    return connected[0] == node


class OperatorAudit:
    def __init__(self, node: str) -> None:
        self.node = node
        self._maintenance: tuple[bool, str, str] | None = None
        self._requests = RecentIds()

    def entries(self, control: Control, recorder: bool, epoch: int | None) -> list[HistoryEntry]:
        """History entries for what changed in `control` since the last call."""
        if control is UNREADABLE_CONTROL:
            return []  # logged as control_unreadable; nothing an operator did
        out: list[HistoryEntry] = []
        key = (control.maintenance, control.maintenance_by, control.maintenance_since)
        if self._maintenance is not None and key != self._maintenance and recorder:
            state = "on" if control.maintenance else "off"
            reason = control.maintenance_reason or "(no reason given)"
            by = control.maintenance_by or "unknown"
            out.append(
                HistoryEntry(now_iso(), self.node, f"maintenance_{state}", epoch, reason, by)
            )
        self._maintenance = key
        for kind, req in (("switchover", control.switchover), ("failover", control.failover)):
            if req is None or req.id in self._requests:
                continue
            self._requests.add(req.id)
            if recorder:
                to = req.to or "any healthy standby"
                reason = f"to {to}" + (f": {req.reason}" if req.reason else "")
                out.append(
                    HistoryEntry(
                        now_iso(), self.node, f"{kind}_requested", epoch, reason, req.requested_by
                    )
                )
        return out
