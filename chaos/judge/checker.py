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
   `no_alert` (no `fence_failed` inside a fault window), `outage`, `served_during_fault`
   (a node served while the scenario says nobody may, e.g. ZooKeeper quorum lost),
   `not_tempfail` (a fault that must be answered with 4xx, the store full, got
   another failure, or no 4xx at all);
6. `vip_overlap` — two nodes holding the service IP at once (the runner's polls of each
   node's addresses, and the daemons' `resource_started` lines for the VIP);
7. `epoch` — an epoch used by two nodes, or a takeover whose epoch does not rise
   above every epoch before it (service starts, store writes, `promoted` lines);
8. `no_recovery` — the client never had a successful delivery after the last heal,
   or its last deliveries failed with no success after them: every scenario;
9. `corrupt_history` — a history file has an unreadable line (not a torn last one).

A service interval whose end was never written (the node lost power) closes at
the power switch's `power_off` record, else at the end of the observation: the
longer interval is the conservative one for rule 1.

It also measures, per fault, the client-visible outage: the first failed
delivery after the fault started to the first successful one after it (`outage`)
and the last success before to that first success after (`gap`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from chaos.judge.history import Expectation, Fault, History

ALERT_EVENT = "fence_failed"  # what the daemon logs (critical) when no fencing method worked
VIP_RESOURCE = "vip"  # the daemon's resource name for the VIP starts with this


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
    mailboxes over IMAP (chaos/judge/readback.py); lost mail is judged against them."""
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
    if expect.require_alert and not _alerted(h, faults, end):
        v.append(
            Violation(
                "no_alert",
                f"fencing was impossible but no daemon logged {ALERT_EVENT} "
                "inside the fault window",
            )
        )
    if expect.quiet_after is not None:
        v += _served_during_fault(intervals, faults, expect.quiet_after, end)
    if expect.tempfail_during_fault:
        v += tempfail_violations(h, faults, end)
    v += vip_violations(h)
    v += epoch_violations(h, intervals)
    v += recovery_violations(h, faults)
    v += [Violation("corrupt_history", c) for c in h.corrupt]

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


# -- the stricter rules (issue 11) ------------------------------------------------------


def _alerted(h: History, faults: list[Fault], end: float) -> bool:
    """The named alert, logged while some fault was in force."""
    return any(
        r.event == ALERT_EVENT
        and r.t is not None
        and any(f.start <= r.t <= (f.heal if f.heal is not None else end) for f in faults)
        for r in h.logs
    )


def tempfail_violations(h: History, faults: list[Fault], end: float) -> list[Violation]:
    """`not_tempfail`: inside a fault that must be answered with 4xx (the store full),
    a failed delivery got anything else, or no delivery got a 4xx at all (the fault
    never bit, so the run proves nothing)."""
    out = []
    for f in faults:
        hi = f.heal if f.heal is not None else end
        inside = [d for d in h.deliveries if f.start <= d.t_start <= hi]
        wrong = [d for d in inside if not d.ok and not (d.code and 400 <= d.code < 500)]
        if wrong:
            d = wrong[0]
            out.append(
                Violation(
                    "not_tempfail",
                    f"{len(wrong)} deliveries during {f.name} failed without a 4xx, first "
                    f"message {d.n}: code {d.code}, {d.error or 'no error'}",
                )
            )
        if not any(d.code and 400 <= d.code < 500 for d in inside):
            out.append(
                Violation("not_tempfail", f"no delivery during {f.name} got a 4xx: it never bit")
            )
    return out


def _served_during_fault(
    intervals: list[Interval], faults: list[Fault], grace: float, end: float
) -> list[Violation]:
    out = []
    for f in faults:
        lo, hi = f.start + grace, f.heal if f.heal is not None else end
        for i in intervals:
            if i.start < hi and i.end > lo or (i.start == i.end and lo <= i.start <= hi):
                out.append(
                    Violation(
                        "served_during_fault",
                        f"{i.node} (epoch {i.epoch}) served from {max(i.start, lo):.3f} during "
                        f"{f.name}, where nobody may serve later than {grace:.1f}s after its start",
                    )
                )
    return out


def vip_intervals(h: History) -> list[Interval]:
    """Per node, the stretches every poll saw it hold the VIP, plus the daemons' VIP starts.

    A poll interval is [first poll that saw it, last poll that saw it]; a VIP start
    logged by a daemon is a point (proof "log"). Intervals are lower bounds, so an
    overlap between two nodes is certain.
    """
    end = h.observed_end
    out: list[Interval] = []
    open_: dict[str, float] = {}
    for e in sorted(h.vip, key=lambda e: e.t):
        if e.event == "vip_held":
            open_.setdefault(e.node, e.t)
        elif e.event in ("vip_released", "vip_watch_end") and e.node in open_:
            start = open_.pop(e.node)
            last = e.last_held if e.last_held is not None else start
            out.append(Interval(e.node, start, max(start, last), proof="poll"))
    for node, start in open_.items():  # the watch never said it stopped: up to the end
        out.append(Interval(node, start, max(start, end), proof="poll"))
    # Records after the end of the observation (teardown) are not judged.
    out = [replace(i, end=min(i.end, end)) for i in out if i.start <= end]
    for r in h.logs:
        if r.event == "resource_started" and (r.resource or "").startswith(VIP_RESOURCE):
            if r.t is not None and r.t <= end:
                out.append(Interval(r.node, r.t, r.t, proof="log"))
    return sorted(out, key=lambda i: (i.start, i.node))


def vip_violations(h: History) -> list[Violation]:
    return [
        Violation(
            "vip_overlap",
            f"{a.node} ({a.proof}) and {b.node} ({b.proof}) both held the VIP from "
            f"{max(a.start, b.start):.3f} to {min(a.end, b.end):.3f}",
        )
        for a, b in overlaps(vip_intervals(h))
    ]


def epoch_violations(h: History, intervals: list[Interval]) -> list[Violation]:
    """Each epoch belongs to one node; each takeover's epoch is above every earlier one."""
    out: list[Violation] = []
    owners: dict[int, set[str]] = {}
    uses = [(e.node, e.epoch) for e in h.service if e.event == "service_up"]
    uses += [(w.node, w.epoch) for w in h.writes if w.accepted]
    uses += [(r.node, r.epoch) for r in h.logs if r.event == "promoted"]
    for node, epoch in uses:
        if epoch is not None:
            owners.setdefault(epoch, set()).add(node)
    for epoch, nodes in sorted(owners.items()):
        if len(nodes) > 1:
            out.append(Violation("epoch", f"epoch {epoch} used by {' and '.join(sorted(nodes))}"))
    starts = [(i.start, i.node, i.epoch, "service start") for i in intervals if i.proof == "events"]
    starts += [(r.t, r.node, r.epoch, "promoted") for r in h.logs if r.event == "promoted" and r.t]
    highest: tuple[int, str] | None = None
    for t, node, epoch, what in sorted(starts, key=lambda x: x[0]):
        if epoch is None:
            if what == "service start":
                out.append(
                    Violation("epoch", f"{node} started its service with no epoch at {t:.3f}")
                )
            continue
        if highest is not None and (epoch, node) != highest and epoch <= highest[0]:
            out.append(
                Violation(
                    "epoch",
                    f"{what} of {node} at {t:.3f} with epoch {epoch}, not above epoch "
                    f"{highest[0]} of {highest[1]} before it",
                )
            )
        if highest is None or epoch > highest[0]:
            highest = (epoch, node)
    return out


def recovery_violations(h: History, faults: list[Fault]) -> list[Violation]:
    """The client must be served again after the last heal, and its last word is a success."""
    if not faults or not h.deliveries:
        return []
    last_heal = max(f.heal if f.heal is not None else f.start for f in faults)
    ok = [d for d in h.deliveries if d.ok]
    if not any(d.t_start >= last_heal for d in ok):
        return [
            Violation(
                "no_recovery",
                f"no delivery succeeded after the last heal at {last_heal:.3f} "
                f"({sum(d.t_start >= last_heal for d in h.deliveries)} attempts after it)",
            )
        ]
    last_ok = max(d.t_start for d in ok)
    trailing = [d for d in h.deliveries if not d.ok and d.t_start > last_ok]
    if trailing:
        first = min(d.t_start for d in trailing)
        return [
            Violation(
                "no_recovery",
                f"{len(trailing)} deliveries failed from {first:.3f} to the end of the "
                "observation with no success after them",
            )
        ]
    return []
