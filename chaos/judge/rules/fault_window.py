"""`not_settled` and `outage`: after each fault, one active again, soon enough.

A failover controller is judged by how it comes out of a fault: within the
scenario's `settle` bound after the heal exactly one node must be serving, and
stay so until the next fault (or the end of the observation); where the scenario
bounds the client's outage (`max_outage`), the outage must stay within it, and a
client never served again is beyond any bound. Reads the fault windows measured
once (chaos/judge/rules/evidence.py). Both are judged per fault, in fault order, so
a fault's two problems stay together.
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult, Violation


def fault_window(ev: Evidence) -> RuleResult:
    expect = ev.expect
    out: list[Violation] = []
    for w in ev.windows:
        if w.settled is None or w.settled - w.healed > expect.settle:
            when = "never" if w.settled is None else f"only {w.settled - w.healed:.1f}s"
            out.append(
                Violation(
                    "not_settled",
                    f"after {w.fault.name} healed, exactly one node served {when} "
                    f"(bound {expect.settle:.0f}s, observed until {w.end - w.healed:.1f}s)",
                )
            )
        took = w.client["outage"]
        if expect.max_outage is not None and (took is None or took > expect.max_outage):
            out.append(
                Violation("outage", f"{w.fault.name}: outage {took}s > {expect.max_outage}s")
            )
    return RuleResult("fault_window", out)
