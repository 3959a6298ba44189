"""`vip_overlap`: two nodes holding the service IP at once.

Two holders of the VIP split the clients between them even when only one service
writes, so the VIP is judged on its own, from what was seen rather than believed:
the runner's polls of each node's addresses (chaos/lab/vipwatch.py) and the
daemons' `resource_started` lines for the VIP. Fails for every pair of two nodes'
VIP intervals that share a moment.

A poll interval is [first poll that saw it, last poll that saw it]; a VIP start
logged by a daemon is a point (proof "log"). Intervals are lower bounds, so an
overlap between two nodes is certain.
"""

from __future__ import annotations

from dataclasses import replace

from chaos.judge.history import History
from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult
from chaos.judge.serving import Interval, overlaps

VIP_RESOURCE = "vip"  # the daemon's resource name for the VIP starts with this


def vip_intervals(h: History) -> list[Interval]:
    """Per node, the stretches every poll saw it hold the VIP, plus the daemons' VIP starts."""
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


def vip_overlap(ev: Evidence) -> RuleResult:
    return RuleResult.of(
        "vip_overlap",
        [
            f"{a.node} ({a.proof}) and {b.node} ({b.proof}) both held the VIP from "
            f"{max(a.start, b.start):.3f} to {min(a.end, b.end):.3f}"
            for a, b in overlaps(vip_intervals(ev.history))
        ],
    )
