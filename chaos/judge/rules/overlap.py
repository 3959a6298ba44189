"""`overlap`: two nodes serving at the same time, the split brain the daemon exists to prevent.

Reads the serving intervals (chaos/judge/serving.py: the services' own up/down
events, power-offs, and store writes as proof of serving), never what a daemon
believed. Fails for every pair of intervals of two nodes that share a moment:
touching ends (a clean handover) are not an overlap, a lone write inside the
other node's interval is.
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult
from chaos.judge.serving import overlaps


def overlap(ev: Evidence) -> RuleResult:
    messages = []
    for a, b in overlaps(ev.intervals):
        lo, hi = max(a.start, b.start), min(a.end, b.end)
        messages.append(
            f"{a.node} (epoch {a.epoch}, {a.proof}) and {b.node} (epoch {b.epoch}, "
            f"{b.proof}) both served from {lo:.3f} to {hi:.3f} ({hi - lo:.3f}s)"
        )
    return RuleResult.of("overlap", messages)
