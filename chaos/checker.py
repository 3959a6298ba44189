"""The checker: a pure judgement of a recorded history (DESIGN.md §8).

It fails the run on
1. `overlap`     — two nodes serving at overlapping times, judged from what the
                   services recorded (up/down events; a store write by X at t
                   proves X served at t), never from what a daemon believed;
2. `lost`        — a message the client saw acknowledged (250) missing from the store;
3. `stale_epoch` — an accepted write whose epoch is lower than one already accepted
                   (or that carries no epoch at all);
4. `not_settled` — no single active within the scenario's bound after a fault heals;
5. `unwarranted_failover` — a takeover where the scenario forbids one, and the
   scenario's own bounds: `no_failover` (a failover was required), `too_many_takeovers`,
   `no_alert`, `outage`.

A service interval whose end was never written (the node lost power) closes at
the power switch's `power_off` record, else at the end of the observation: the
longer interval is the conservative one for rule 1.

It also measures, per fault, the client-visible outage: the first failed
delivery after the fault started to the first successful one after it (`outage`)
and the last success before to that first success after (`gap`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chaos.history import Expectation, Fault, History

ALERT_LEVELS = ("warning", "error", "critical")


@dataclass(frozen=True)
class Interval:
    node: str
    start: float
    end: float
    epoch: int | None = None
    proof: str = "events"  # "events" (service_up..down) or "write" (a lone store write)


@dataclass
class Violation:
    rule: str
    message: str


@dataclass
class Verdict:
    passed: bool
    violations: list[Violation]
    intervals: list[Interval]
    outages: list[dict[str, Any]]
    takeovers: int
    failovers: int
    stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "violations": [asdict(v) for v in self.violations],
            "takeovers": self.takeovers,
            "failovers": self.failovers,
            "outages": self.outages,
            "intervals": [asdict(i) for i in self.intervals],
            "stats": self.stats,
        }


# -- who served when ------------------------------------------------------------------


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
    return [
        (a, b)
        for i, a in enumerate(intervals)
        for b in intervals[i + 1 :]
        if a.node != b.node and _overlap(a, b)
    ]


def serving_count(intervals: list[Interval], t: float) -> set[str]:
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


# -- the client's view ----------------------------------------------------------------


def outage(h: History, start: float, end: float) -> dict[str, Any]:
    ds = sorted(h.deliveries, key=lambda d: d.t_start)
    failed = [d for d in ds if not d.ok and start <= d.t_end and d.t_start < end]
    out: dict[str, Any] = {"failed": len(failed), "outage": 0.0, "gap": None}
    if not failed:
        return out
    first = failed[0]
    after = next((d for d in ds if d.ok and d.t_start >= first.t_start), None)
    before = [d.t_end for d in ds if d.ok and d.t_end <= first.t_start]
    if after is None:
        out["outage"] = None  # never recovered within the observation
        return out
    out["outage"] = round(after.t_end - first.t_start, 3)
    if before:
        out["gap"] = round(after.t_end - max(before), 3)
    return out


# -- the judgement ----------------------------------------------------------------------


def check(h: History, expect: Expectation, delivered: set[int] | None = None) -> Verdict:
    """Judge `h`. `delivered`: with the real mail node, the messages read from the
    mailboxes over IMAP (chaos/mailcheck.py); lost mail is judged against them."""
    v: list[Violation] = []
    intervals = service_intervals(h)
    end = h.observed_end
    faults = h.faults()

    for a, b in overlaps(intervals):
        lo, hi = max(a.start, b.start), min(a.end, b.end)
        v.append(
            Violation(
                "overlap",
                f"{a.node} (epoch {a.epoch}, {a.proof}) and {b.node} (epoch {b.epoch}, "
                f"{b.proof}) both served from {lo:.3f} to {hi:.3f} ({hi - lo:.3f}s)",
            )
        )

    stored = {w.msg for w in h.writes if w.accepted} if delivered is None else delivered
    lost = sorted(d.n for d in h.deliveries if d.ok and d.n not in stored)
    where = "the store" if delivered is None else "any mailbox (read over IMAP)"
    if lost:
        v.append(
            Violation("lost", f"{len(lost)} acknowledged messages not in {where}: {lost[:20]}")
        )

    highest: int | None = None
    for w in h.writes:
        if not w.accepted:
            continue
        if w.epoch is None:
            v.append(
                Violation("stale_epoch", f"message {w.msg} from {w.node} written with no epoch")
            )
        elif highest is not None and w.epoch < highest:
            v.append(
                Violation(
                    "stale_epoch",
                    f"message {w.msg} from {w.node} written with epoch {w.epoch} "
                    f"after epoch {highest} at {w.t:.3f}",
                )
            )
        else:
            highest = w.epoch if highest is None else max(highest, w.epoch)

    outages = []
    for i, f in enumerate(faults):
        healed = f.heal if f.heal is not None else f.start
        window_end = faults[i + 1].start if i + 1 < len(faults) else end
        at = settled_at(intervals, healed, window_end)
        o = {"fault": f.name, "start": f.start, "heal": f.heal, **outage(h, f.start, window_end)}
        o["settled_after_heal"] = None if at is None else round(at - healed, 3)
        outages.append(o)
        if at is None or at - healed > expect.settle:
            when = "never" if at is None else f"only {at - healed:.1f}s"
            v.append(
                Violation(
                    "not_settled",
                    f"after {f.name} healed, exactly one node served {when} "
                    f"(bound {expect.settle:.0f}s, observed until {window_end - healed:.1f}s)",
                )
            )
        if expect.max_outage is not None and (
            o["outage"] is None or o["outage"] > expect.max_outage
        ):
            v.append(Violation("outage", f"{f.name}: outage {o['outage']}s > {expect.max_outage}s"))

    takeovers, failovers = _transitions(intervals, faults, expect, v)
    if expect.require_alert and not any(
        r.level in ALERT_LEVELS and "fence" in r.event for r in h.logs
    ):
        v.append(Violation("no_alert", "fencing was impossible but no daemon raised an alert"))

    stats = {
        "deliveries": len(h.deliveries),
        "acknowledged": sum(d.ok for d in h.deliveries),
        "failed": sum(not d.ok for d in h.deliveries),
        "writes_accepted": sum(w.accepted for w in h.writes),
        "writes_rejected": sum(not w.accepted for w in h.writes),
        "highest_epoch": highest,
    }
    return Verdict(not v, v, intervals, outages, takeovers, failovers, stats)


def _transitions(
    intervals: list[Interval], faults: list[Fault], expect: Expectation, v: list[Violation]
) -> tuple[int, int]:
    """Count takeovers (a service starting) and failovers (the serving node changing)."""
    real = [i for i in intervals if i.start < i.end]
    if not faults:
        return 0, 0
    first = faults[0].start
    takeovers = [i for i in real if i.start > first]
    failovers = 0
    for i in takeovers:
        before = [p for p in real if p.start < i.start]
        if before and max(before, key=lambda p: p.start).node != i.node:
            failovers += 1
    if expect.failover == "forbidden" and takeovers:
        v.append(
            Violation(
                "unwarranted_failover",
                f"{len(takeovers)} takeover(s) where none was warranted: "
                + ", ".join(f"{i.node} at {i.start:.3f} (epoch {i.epoch})" for i in takeovers),
            )
        )
    if expect.failover == "forbidden-during-fault":
        during = [
            i
            for i in takeovers
            for f in faults
            if f.start < i.start < (f.heal if f.heal is not None else float("inf"))
        ]
        if during:
            v.append(
                Violation(
                    "unwarranted_failover",
                    "takeover during the fault: "
                    + ", ".join(f"{i.node} at {i.start:.3f}" for i in during),
                )
            )
    if expect.failover == "required" and failovers == 0:
        v.append(Violation("no_failover", "the fault required a failover and none happened"))
    if expect.max_takeovers is not None and len(takeovers) > expect.max_takeovers:
        v.append(
            Violation(
                "too_many_takeovers",
                f"{len(takeovers)} takeovers, at most {expect.max_takeovers} expected",
            )
        )
    return len(takeovers), failovers
