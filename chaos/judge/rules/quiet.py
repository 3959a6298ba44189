"""`served_during_fault`: a node served where the scenario says nobody may.

Some faults take away what serving safely rests on (ZooKeeper's quorum lost): the
active must stop within a grace (`Expectation.quiet_after` seconds after the
fault's start) and nobody may serve until the heal. Reads the serving intervals.
Fails for each interval (a lone store write included) that reaches into
[start + grace, heal] of a fault; scenarios without `quiet_after` pass.
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult


def served_during_fault(ev: Evidence) -> RuleResult:
    grace = ev.expect.quiet_after
    messages = []
    if grace is None:
        return RuleResult.of("served_during_fault", messages)
    for f in ev.faults:
        lo, hi = f.start + grace, ev.in_force_until(f)
        for i in ev.intervals:
            if i.start < hi and i.end > lo or (i.start == i.end and lo <= i.start <= hi):
                messages.append(
                    f"{i.node} (epoch {i.epoch}) served from {max(i.start, lo):.3f} during "
                    f"{f.name}, where nobody may serve later than {grace:.1f}s after its start"
                )
    return RuleResult.of("served_during_fault", messages)
