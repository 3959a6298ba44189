"""Operator requests (a switchover, a forced failover in the `control` znode),
checked by each daemon itself before it acts on one or stands aside for one.

`control` is written by operators, whose credential may write nothing else; until
these checks only failoverctl looked at a request's target. So a request written
by hand (or by a buggy tool) naming a member that does not exist made every
standby stand aside for it, for up to an hour, and a daemon restart started that
hour again: failover switched off, unseen, by whoever could write `control`.
Now a request counts, for the decisions, only if

* it is younger than its life: the smaller of its own `timeout` and this node's
  bound (`switchover.timeout`; for a forced failover plus `zookeeper.session_timeout`,
  which is what failoverctl gives one). Its age is counted from its own
  `requested_at`, so a restarted daemon does not start it again, and at least from
  when this daemon first saw it, so a wall clock stepping back does not extend it.
  A `requested_at` in the future (another machine's clock runs ahead) counts as
  the moment this daemon first saw it; one further ahead than the life itself is
  not clock skew and the request is ignored, since each restart would otherwise
  grant it a new life;
* its target is this node, or a configured peer that is connected (its member
  znode exists), healthy and eligible as it published (failoverd/node/eligibility.py).
  A member from before eligibility was published is judged by what it does
  publish: a healthy standby, not in maintenance. A forced failover must name its
  target (failoverctl always does);
* it is not a forced failover next to a switchover: failoverctl writes one or the
  other, never both. Written together, only the switchover may count (a switchover
  that makes a live active step down, next to a forced failover that hands the
  freed lease to a node of the writer's choosing, which need not be healthy, is no
  operator's intent). The rule looks at what `control` holds, not at whether the
  switchover is valid: every node reads the same znode, while members' statuses
  and clocks differ a little from node to node, and a forced target that judged
  the switchover invalid a moment before the active judged it valid would race
  the switchover's target for the freed lease.

An ignored request is not acted on by anyone: nobody stands aside for it and no
active steps down for it. The daemon logs it once (`request_ignored`), and it
shows in the node's `why` and in failoverctl's verdict.

Pure: plain values in, an answer out; the clocks are the caller's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from failoverd.zk.znodes import UNKNOWN_ELIGIBILITY, Control, MemberStatus, Request

SWITCHOVER = "switchover"
FAILOVER = "failover"
MAX_TEXT = 64  # of operator-written text quoted in `why` and the verdict


@dataclass(frozen=True)
class RequestCheck:
    """One request and the verdict on it. `code` is short and bounded (logs, tests);
    `problem` one clause for humans; both "" when the request is valid."""

    kind: str
    request: Request
    code: str = ""
    problem: str = ""

    @property
    def valid(self) -> bool:
        return not self.code

    def describe(self) -> str:
        """`switchover to mail2 requested by alice at 2026-12-06T21:00:00.000Z`.

        Who and when are whatever the writer of `control` put there: cut short, since
        this goes into every member's status (`why`), which peers refuse to read
        beyond 64 KiB."""
        r = self.request
        target = r.to or "any healthy standby"
        by, at = clip(r.requested_by) or "?", clip(r.requested_at)
        return f"{self.kind} to {target} requested by {by} at {at}"

    def sentence(self) -> str:
        if self.valid:
            return f"{self.describe()} is pending"
        return f"{self.describe()} is ignored: {self.problem}"


@dataclass(frozen=True)
class Requests:
    """Every request in `control` with its verdict; the valid ones are what counts."""

    checks: tuple[RequestCheck, ...] = ()

    def valid(self, kind: str) -> RequestCheck | None:
        return next((c for c in self.checks if c.kind == kind and c.valid), None)

    @property
    def switchover(self) -> Request | None:
        c = self.valid(SWITCHOVER)
        return c.request if c else None

    @property
    def failover(self) -> Request | None:
        c = self.valid(FAILOVER)
        return c.request if c else None

    @property
    def ignored(self) -> tuple[RequestCheck, ...]:
        return tuple(c for c in self.checks if not c.valid)

    # What the decisions read (decision.Observation), from the valid requests only.
    @property
    def switchover_pending(self) -> bool:
        return self.switchover is not None

    @property
    def switchover_to(self) -> str | None:
        return self.switchover.to if self.switchover is not None else None

    @property
    def failover_to(self) -> str | None:
        return self.failover.to if self.failover is not None else None


NO_REQUESTS = Requests()


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def parse_time(text: str) -> float | None:
    """An ISO 8601 time with its zone (what failoverctl writes) as POSIX seconds;
    None for anything else, a time without a zone included (whose clock?)."""
    try:
        at = datetime.fromisoformat(text)
    except (ValueError, TypeError):
        return None
    if at.tzinfo is None:
        return None
    try:
        return at.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def check_requests(
    control: Control,
    *,
    node: str,
    configured: Collection[str],
    members: Mapping[str, MemberStatus | None],
    now_wall: float,
    bounds: Mapping[str, float],
    seen_for: Mapping[str, float] | None = None,
    done: Collection[str] = (),
) -> Requests:
    """The verdict on each request in `control`, from `node`'s point of view.

    `configured`: the member names in this node's config (itself included);
    `members`: the member znodes as read (absent = not connected, None = unreadable);
    `now_wall`: POSIX seconds; `bounds`: the longest life per kind ("switchover",
    "failover"); `seen_for`: per request id, seconds since this daemon first saw it;
    `done`: ids this node has served (a demotion for a switchover), left out."""
    seen_for = seen_for or {}
    both = control.switchover is not None and control.failover is not None
    checks = []
    for kind, req in ((SWITCHOVER, control.switchover), (FAILOVER, control.failover)):
        if req is None or req.id in done:
            continue
        life = min(req.timeout, bounds[kind])
        code, problem = _timing(req, life, now_wall, seen_for.get(req.id, 0.0))
        if not code and kind == FAILOVER and both:
            code, problem = "conflict", CONFLICT
        if not code:
            code, problem = _target(kind, req.to, node, configured, members)
        checks.append(RequestCheck(kind, req, code, problem))
    return Requests(tuple(checks))


CONFLICT = "a switchover was written next to it (failoverctl writes one or the other)"


def _timing(req: Request, life: float, now_wall: float, seen_for: float) -> tuple[str, str]:
    at = parse_time(req.requested_at)
    if at is None:
        return "bad_time", f"its requested_at {clip(req.requested_at)!r} is not a time with a zone"
    ahead = at - now_wall
    if ahead > life:
        # No count of seconds here: `why` must not change by itself from tick to tick.
        return "future", f"it is dated further in the future than its {life:g}s life"
    age = max(now_wall - at, seen_for)  # a future date counts from when it was seen
    if age >= life:
        return "expired", f"it expired after {life:g}s"
    return "", ""


def _target(
    kind: str,
    to: str | None,
    node: str,
    configured: Collection[str],
    members: Mapping[str, MemberStatus | None],
) -> tuple[str, str]:
    if to is None:
        if kind == FAILOVER:
            return "no_target", "a forced failover must name its target"
        return "", ""  # "any healthy standby": nobody stands aside for it
    if to not in configured:
        return "ghost", f"{to} is not a configured member"
    if to == node:
        return "", ""  # this node judges itself by its own observation, not its status
    if to not in members:
        return "disconnected", f"{to} is not connected to ZooKeeper"
    m = members[to]
    if m is None:
        return "unreadable", f"{to}'s member status is unreadable"
    if not m.healthy:
        return "unhealthy", f"{to} fails its health checks"
    if m.why == UNKNOWN_ELIGIBILITY and not m.eligible:
        # An older failoverd publishes no eligibility: what the check was before it.
        if m.role != "standby" or m.maintenance:
            return "ineligible", f"{to} is not a standby out of maintenance ({m.role})"
        return "", ""
    if not m.eligible:
        # Its own reason comes first in its `why`; cut short, since its `why` may quote
        # ours in turn (two members each ignoring a request naming the other).
        return "ineligible", f"{to} could not take over: {clip(m.why)}"
    return "", ""
