"""`stale_epoch`: the store accepted a write from a node that had already been superseded.

Fencing by epoch works only if every accepted write carries the writer's epoch and
epochs never go back: a write below one already accepted comes from a deposed
active (its lease lost) still writing. Reads the store's accepted writes in
acceptance order; writes the fenced store rejected are fine (that is the fence
working). Fails for each accepted write with no epoch, and each with an epoch
below the highest accepted before it.
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult


def stale_epoch(ev: Evidence) -> RuleResult:
    messages = []
    highest: int | None = None
    for w in ev.history.writes:
        if not w.accepted:
            continue
        if w.epoch is None:
            messages.append(f"message {w.msg} from {w.node} written with no epoch")
        elif highest is not None and w.epoch < highest:
            messages.append(
                f"message {w.msg} from {w.node} written with epoch {w.epoch} "
                f"after epoch {highest} at {w.t:.3f}"
            )
        else:
            highest = w.epoch if highest is None else max(highest, w.epoch)
    return RuleResult.of("stale_epoch", messages)
