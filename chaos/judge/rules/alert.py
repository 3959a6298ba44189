"""`no_alert`: fencing was impossible and nobody was told.

When no fencing method can work (the scenario sets `require_alert`), the daemon
must not take over blindly, and it must say so: it logs `fence_failed` (critical),
which is what an operator's alerting watches. Reads the daemons' log lines. Fails
when no `fence_failed` line with a readable time falls inside any fault (from its
start to its heal, or the end of the observation). Other scenarios pass.
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult

ALERT_EVENT = "fence_failed"  # what the daemon logs (critical) when no fencing method worked


def no_alert(ev: Evidence) -> RuleResult:
    if not ev.expect.require_alert:
        return RuleResult.of("no_alert", [])
    alerted = any(
        r.event == ALERT_EVENT
        and r.t is not None
        and any(f.start <= r.t <= ev.in_force_until(f) for f in ev.faults)
        for r in ev.history.logs
    )
    if alerted:
        return RuleResult.of("no_alert", [])
    return RuleResult.of(
        "no_alert",
        [f"fencing was impossible but no daemon logged {ALERT_EVENT} inside the fault window"],
    )
