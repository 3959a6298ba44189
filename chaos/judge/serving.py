"""Who served when: each node's serving intervals, as the services recorded them.

Several rules judge the same intervals (two nodes at once, one node after a heal,
nobody during a quorum loss, takeovers and their epochs), and the timeline and the
benchmark draw and count them; they are built here, once, from what the services
wrote (up/down events; a store write by X at t proves X served at t), never from
what a daemon believed.

A service interval whose end was never written (the node lost power) closes at
the power switch's `power_off` record, else at the end of the observation: the
longer interval is the conservative one for the overlap rule.

A takeover is a service starting after the first fault began; a failover is a
takeover on another node than the one that started serving last before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaos.judge.history import Fault, History


@dataclass(frozen=True)
class Interval:
    node: str
    start: float
    end: float
    epoch: int | None = None
    proof: str = "events"  # "events" (service_up..down) or "write" (a lone store write)


def service_intervals(h: History) -> list[Interval]:
    """Each node's serving intervals, from its service events, power-offs and writes."""
    end = h.observed_end
    marks: list[tuple[float, int, str, str, int | None]] = []
    # Records after the end of the observation (teardown) are not judged.
    for e in h.service:
        if e.t <= end:
            marks.append((e.t, 1 if e.event == "service_down" else 2, e.node, e.event, e.epoch))
    for le in h.lab:
        if le.event == "power_off" and le.node is not None and le.t <= end:
            marks.append((le.t, 0, le.node, "power_off", None))
    out: list[Interval] = []
    open_: dict[str, tuple[float, int | None]] = {}
    for t, _, node, event, epoch in sorted(marks):
        if event == "service_up":
            # A second `up` without a `down` keeps the earlier start (the longer interval).
            open_.setdefault(node, (t, epoch))
        elif node in open_:
            start, ep = open_.pop(node)
            out.append(Interval(node, start, t, ep))
    for node, (start, ep) in open_.items():
        out.append(Interval(node, start, max(start, end), ep))
    for w in h.writes:
        if w.accepted and not any(i.node == w.node and i.start <= w.t <= i.end for i in out):
            out.append(Interval(w.node, w.t, w.t, w.epoch, proof="write"))
    return sorted(out, key=lambda i: (i.start, i.node))


def _overlap(a: Interval, b: Interval) -> bool:
    lo, hi = max(a.start, b.start), min(a.end, b.end)
    if a.start == a.end or b.start == b.end:
        return lo <= hi  # a lone write inside the other's interval
    return lo < hi


def overlaps(intervals: list[Interval]) -> list[tuple[Interval, Interval]]:
    """Every pair of intervals of two different nodes that share a moment."""
    return [
        (a, b)
        for i, a in enumerate(intervals)
        for b in intervals[i + 1 :]
        if a.node != b.node and _overlap(a, b)
    ]


def serving_count(intervals: list[Interval], t: float) -> set[str]:
    """The nodes serving at t (lone writes, which last no time, do not count)."""
    return {i.node for i in intervals if i.start < i.end and i.start <= t < i.end}


def settled_at(intervals: list[Interval], start: float, end: float) -> float | None:
    """Earliest t in [start, end) from which exactly one node serves until `end`."""
    real = [i for i in intervals if i.start < i.end]
    points = sorted({start, end, *(x for i in real for x in (i.start, i.end) if start < x < end)})
    settled: float | None = None
    for lo, hi in zip(points, points[1:], strict=False):
        if len(serving_count(real, (lo + hi) / 2)) == 1:
            settled = lo if settled is None else settled
        else:
            settled = None
    return settled


def takeovers(intervals: list[Interval], faults: list[Fault]) -> list[Interval]:
    """The services started after the first fault began (none when there was no fault)."""
    if not faults:
        return []
    return [i for i in intervals if i.start < i.end and i.start > faults[0].start]


def failovers(intervals: list[Interval], taken: list[Interval]) -> int:
    """How many of the takeovers `taken` changed the serving node."""
    real = [i for i in intervals if i.start < i.end]
    count = 0
    for i in taken:
        before = [p for p in real if p.start < i.start]
        if before and max(before, key=lambda p: p.start).node != i.node:
            count += 1
    return count
