"""`epoch`: an epoch shared by two nodes, or a takeover whose epoch does not rise.

The epoch is the fence every write and every resource carries; it works only if
each epoch belongs to one node and each new active takes one above every epoch
before it. Reads every place an epoch shows: service starts, accepted store
writes and the daemons' `promoted` lines. Fails for each epoch used by two nodes,
each service started with no epoch, and each service start or promotion whose
epoch is not above the highest one before it (the same node repeating its own
epoch is fine).
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult


def epoch(ev: Evidence) -> RuleResult:
    h = ev.history
    messages = []
    owners: dict[int, set[str]] = {}
    uses = [(e.node, e.epoch) for e in h.service if e.event == "service_up"]
    uses += [(w.node, w.epoch) for w in h.writes if w.accepted]
    uses += [(r.node, r.epoch) for r in h.logs if r.event == "promoted"]
    for node, used in uses:
        if used is not None:
            owners.setdefault(used, set()).add(node)
    for used, nodes in sorted(owners.items()):
        if len(nodes) > 1:
            messages.append(f"epoch {used} used by {' and '.join(sorted(nodes))}")
    starts = [
        (i.start, i.node, i.epoch, "service start") for i in ev.intervals if i.proof == "events"
    ]
    starts += [(r.t, r.node, r.epoch, "promoted") for r in h.logs if r.event == "promoted" and r.t]
    highest: tuple[int, str] | None = None
    for t, node, started, what in sorted(starts, key=lambda x: x[0]):
        if started is None:
            if what == "service start":
                messages.append(f"{node} started its service with no epoch at {t:.3f}")
            continue
        if highest is not None and (started, node) != highest and started <= highest[0]:
            messages.append(
                f"{what} of {node} at {t:.3f} with epoch {started}, not above epoch "
                f"{highest[0]} of {highest[1]} before it"
            )
        if highest is None or started > highest[0]:
            highest = (started, node)
    return RuleResult.of("epoch", messages)
