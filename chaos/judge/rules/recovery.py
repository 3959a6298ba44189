"""`no_recovery`: the client was not served again after the faults, in any scenario.

Whatever a scenario allows during a fault, the run must end with mail flowing: a
cluster that is "settled" on paper but answers nobody has failed. Reads the
client's deliveries and the faults. Fails when no delivery succeeded after the
last heal, or when the last deliveries failed with no success after them. A run
without faults or without deliveries passes.
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence, healed
from chaos.judge.rules.protocol import RuleResult


def no_recovery(ev: Evidence) -> RuleResult:
    deliveries = ev.history.deliveries
    if not ev.faults or not deliveries:
        return RuleResult.of("no_recovery", [])
    last_heal = max(healed(f) for f in ev.faults)
    ok = [d for d in deliveries if d.ok]
    if not any(d.t_start >= last_heal for d in ok):
        return RuleResult.of(
            "no_recovery",
            [
                f"no delivery succeeded after the last heal at {last_heal:.3f} "
                f"({sum(d.t_start >= last_heal for d in deliveries)} attempts after it)"
            ],
        )
    last_ok = max(d.t_start for d in ok)
    trailing = [d for d in deliveries if not d.ok and d.t_start > last_ok]
    if not trailing:
        return RuleResult.of("no_recovery", [])
    first = min(d.t_start for d in trailing)
    return RuleResult.of(
        "no_recovery",
        [
            f"{len(trailing)} deliveries failed from {first:.3f} to the end of the "
            "observation with no success after them"
        ],
    )
