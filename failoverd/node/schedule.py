"""A scheduled switchover (`failoverctl switchover --at TIME`): when the active
carries it out.

It waits in `control.scheduled`, where no decision looks (releases before it do
not know the field, so an old active never acts on it early). When its time has
come, the active moves it into `control.switchover` with `requested_at` set to
that moment, and from there it is an ordinary switchover request
(node/requests.py judges it, the active steps down for it). Only the active moves
it: there is exactly one, and a switchover needs one.

A schedule the active finds more than one switchover timeout past its time (no
active then, or ZooKeeper unreachable) is dropped, not carried out late: a
switchover planned for a quiet hour must not happen in a busy one.

Pure: plain values in, an answer out.
"""

from __future__ import annotations

from enum import StrEnum

from failoverd.zk.znodes import Request


class Due(StrEnum):
    WAIT = "wait"
    NOW = "now"
    MISSED = "missed"


def due(req: Request, now_wall: float, window: float) -> Due:
    """`now_wall`: POSIX seconds; `window`: how late it may still be carried out
    (switchover.timeout). A schedule without a time is garbage (failoverctl always
    writes one, and decoding drops it): never carried out, dropped as missed."""
    at = req.at
    if at is None:
        return Due.MISSED
    if now_wall < at:
        return Due.WAIT
    if now_wall - at > window:
        return Due.MISSED
    return Due.NOW
