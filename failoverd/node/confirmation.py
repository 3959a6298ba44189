"""An operator's word that a node is down (`failoverctl confirm-fenced NODE`),
Pacemaker's `stonith_admin --confirm`: when and for whom it replaces a fence.

The case it exists for: the old active's site is gone, with its power switch, so
every fencing method fails and the standby rightly refuses to take over. An
operator who has checked by hand that the node is down and its services stopped
says so; the next takeover skips fencing that node, once.

What keeps the word from doing harm:

* failoverctl refuses it while the node is connected to ZooKeeper (its member
  znode exists) or holds the lock: a node that talks to ZooKeeper is not down.
* It names the node *and its last term*: the epoch of the breadcrumb that names
  the node as the active that did not hand over. Any takeover moves the breadcrumb
  on, so a confirmation from an earlier incident, written back into `control` by
  hand or by a tool, never matches again.
* The takeover that uses it checks again that the node has no member znode, then
  still waits out the node's lease (LEASE_WAIT, below) before it skips the fence,
  and consumes the confirmation in one transaction with a check of its own lock:
  exactly one takeover uses it, and only the lock holder can.
* It is withdrawn as soon as the node is seen again (`withdrawal`): by every
  daemon that finds the node's member znode, and by the node's own daemon when it
  reads control. The word was "it is down"; a node that came back may have started
  its services again, or failed to stop them, and a later attempt must fence it
  even if it has dropped off ZooKeeper again by then. Its own daemon covers a
  return shorter than the others' read interval: its member znode is gone again by
  the time anyone else looks, but the withdrawal it wrote stays.
* Anything unreadable in it reads as no confirmation (zk/znodes.py `_lenient`):
  the node is then fenced as always.

Pure: plain values in, an answer out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from failoverd.zk.znodes import Breadcrumb, FenceConfirmation


def lease_wait(session_timeout: float, lease_margin: float) -> float:
    """How long a takeover waits, after winning the lock, before it trusts a
    confirmation instead of a fence.

    The operator's word covers "its resources are stopped"; this wait covers what a
    person cannot see from outside: a node that is in fact alive but cut off from
    ZooKeeper, still inside its local lease. Its lease is renewed only by an answer
    that finds its own lock, and its last renewal was sent before we created ours
    (its lock had to be gone first); each renewal lasts at most the session timeout
    from its send. So once a session timeout has passed since we won the lock, its
    lease has run out and a live node has stopped its resources by itself (it
    demotes when its lease ends). The lease margin is added for the two clocks'
    rates. Counted from our own lock, not from when the lock was first seen free:
    the later moment is the one we know for certain, and the takeover already waits
    this long for lease-wait fencing. What the wait cannot cover, a node frozen past
    its lease with no watchdog device to reset it, is what the operator vouches for."""
    return session_timeout + lease_margin


@dataclass(frozen=True)
class Applies:
    """Whether a confirmation replaces the fence of `target`; `why` is one clause
    for the log and history ("" when there is no confirmation at all)."""

    ok: bool
    why: str = ""


def applies(
    conf: FenceConfirmation | None,
    target: str,
    crumb: Breadcrumb | None,
    readable: bool,
    connected: Collection[str],
) -> Applies:
    """Does `conf` let this takeover skip fencing `target`?

    `crumb`/`readable`: the breadcrumb as this takeover read it; `connected`: the
    members whose member znode exists now."""
    if conf is None:
        return Applies(False)
    if conf.node != target:
        return Applies(False, f"the confirmation names {conf.node}, not {target}")
    if not readable or crumb is None or crumb.node != target or crumb.clean:
        return Applies(
            False, f"the breadcrumb no longer names {target} as the active that did not hand over"
        )
    if crumb.epoch != conf.epoch:
        return Applies(
            False,
            f"the confirmation is for {target}'s term at epoch {conf.epoch}, "
            f"the breadcrumb is at epoch {crumb.epoch} (a confirmation from an earlier incident)",
        )
    if target in connected:
        return Applies(False, f"{target} is connected to ZooKeeper again")
    return Applies(True, f"{target} confirmed down by {conf.by or '?'} at {conf.at}")


def withdrawal(conf: FenceConfirmation | None, me: str, connected: Collection[str]) -> str | None:
    """Why this daemon (`me`) removes `conf` from control now, or None to leave it.

    `connected`: the members whose member znode this daemon last found. Any member
    may withdraw it (a version-checked write: a newer word is never removed)."""
    if conf is None:
        return None
    if conf.node == me:
        return f"{me} is running and connected to ZooKeeper: it is not down"
    if conf.node in connected:
        return f"{conf.node} is connected to ZooKeeper again (its member znode exists)"
    return None


def refusal(
    node: str,
    configured: Collection[str],
    crumb: Breadcrumb | None,
    readable: bool,
    lock_holder: str | None,
    connected: Collection[str],
) -> str | None:
    """Why failoverctl refuses to record a confirmation for `node`, or None.

    `lock_holder`: the lock's holder ("" when the lock is unreadable: someone holds
    it, and it may be `node`)."""
    if node not in configured:
        return f"{node!r} is not a configured member (members: {', '.join(configured)})"
    if node in connected:
        return f"{node} is connected to ZooKeeper (its member znode exists): it is not down"
    if lock_holder == node:
        return f"{node} holds the lock: it is not down"
    if lock_holder == "":
        return "the lock znode is unreadable: it may be held by " + node
    if not readable:
        return "the breadcrumb is unreadable: the next takeover fences every peer"
    if crumb is None or crumb.previous_unknown:
        return "the breadcrumb names no previous active: the next takeover fences every peer"
    if crumb.node != node:
        return (
            f"{node} is not the last active ({crumb.node or 'nobody'} is): "
            "no takeover would fence it"
        )
    if crumb.clean:
        return f"{node} handed over cleanly: no takeover needs to fence it"
    return None
