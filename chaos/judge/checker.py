"""The checker: a pure judgement of a recorded history.

A run is judged by small named rules (chaos/judge/rules/), each reading the same
evidence (the history, the scenario's Expectation, and what is measured once:
serving intervals, fault windows, takeovers) and each testable alone; `check`
composes them into one Verdict. A run passes when no rule found a violation. The
rules, in the order their problems are reported:

1. `overlap`     — two nodes serving at overlapping times, judged from what the
                   services recorded, never from what a daemon believed;
2. `lost`        — a message the client saw acknowledged (250) missing from the store
                   (or, with the real mail node, from every mailbox);
3. `stale_epoch` — an accepted write whose epoch is lower than one already accepted
                   (or that carries no epoch at all);
4. `not_settled` — no single active within the scenario's bound after a fault heals,
   and `outage` — a client outage above the scenario's bound (per fault);
5. `unwarranted_failover` — a takeover where the scenario forbids one, `no_failover`
   — none where it requires one, `too_many_takeovers` — above its bound;
6. `no_alert` — fencing was impossible and no `fence_failed` inside a fault window;
7. `served_during_fault` — a node served while the scenario says nobody may
   (e.g. ZooKeeper quorum lost);
8. `not_tempfail` — a fault that must be answered with 4xx (the store full) got
   another failure, or no 4xx at all;
9. `vip_overlap` — two nodes holding the service IP at once (the runner's polls of
   each node's addresses, and the daemons' `resource_started` lines for the VIP);
10. `epoch` — an epoch used by two nodes, or a takeover whose epoch does not rise
    above every epoch before it (service starts, store writes, `promoted` lines);
11. `no_recovery` — the client never had a successful delivery after the last heal,
    or its last deliveries failed with no success after them: every scenario;
12. `corrupt_history` — a history file has an unreadable line (not a torn last one).

The verdict also carries the measurements: per fault the client-visible outage
and when one node served again (chaos/judge/rules/evidence.py), the takeover and
failover counts, and the delivery and write counts.

The value types and interval helpers the callers use with a verdict (Violation,
Interval, service_intervals, overlaps, settled_at, vip_intervals) are importable
from here too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chaos.judge.history import Expectation, History
from chaos.judge.rules.alert import no_alert
from chaos.judge.rules.corrupt_history import corrupt_history
from chaos.judge.rules.epoch import epoch
from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.fault_window import fault_window
from chaos.judge.rules.lost import lost
from chaos.judge.rules.overlap import overlap
from chaos.judge.rules.protocol import Rule, Violation, compose
from chaos.judge.rules.quiet import served_during_fault
from chaos.judge.rules.recovery import no_recovery
from chaos.judge.rules.stale_epoch import stale_epoch
from chaos.judge.rules.takeovers import failover_mode, too_many_takeovers
from chaos.judge.rules.tempfail import not_tempfail
from chaos.judge.rules.vip_overlap import vip_intervals, vip_overlap
from chaos.judge.serving import Interval, overlaps, service_intervals, settled_at

__all__ = [
    "RULES",
    "Interval",
    "Verdict",
    "Violation",
    "check",
    "overlaps",
    "service_intervals",
    "settled_at",
    "vip_intervals",
]

# The order is the order of the verdict's problems (the module docstring's list).
RULES: tuple[Rule, ...] = (
    overlap,
    lost,
    stale_epoch,
    fault_window,
    failover_mode,
    too_many_takeovers,
    no_alert,
    served_during_fault,
    not_tempfail,
    vip_overlap,
    epoch,
    no_recovery,
    corrupt_history,
)


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


def stats(h: History) -> dict[str, Any]:
    """The run's counts: deliveries, their outcomes, store writes, the highest epoch."""
    epochs = [w.epoch for w in h.writes if w.accepted and w.epoch is not None]
    return {
        "deliveries": len(h.deliveries),
        "acknowledged": sum(d.ok for d in h.deliveries),
        "failed": sum(not d.ok for d in h.deliveries),
        "writes_accepted": sum(w.accepted for w in h.writes),
        "writes_rejected": sum(not w.accepted for w in h.writes),
        "highest_epoch": max(epochs, default=None),
    }


def check(h: History, expect: Expectation, delivered: set[int] | None = None) -> Verdict:
    """Judge `h`. `delivered`: with the real mail node, the messages read from the
    mailboxes over IMAP (chaos/judge/readback.py); lost mail is judged against them."""
    ev = Evidence.of(h, expect, delivered)
    v = [x for result in compose(RULES, ev) for x in result.violations]
    outages = [w.report() for w in ev.windows]
    return Verdict(not v, v, ev.intervals, outages, len(ev.takeovers), ev.failovers, stats(h))
