"""What every rule reads: one run's history, its expectation, and what is measured once.

Several rules, and the verdict itself, need the same derived facts: the serving
intervals, the faults, each fault's window (did one node serve after the heal, how
long did the client wait) and the takeovers. They are measured here, once per
judgement, so no rule recomputes them and no two rules can disagree about them.

A fault's window runs from its start to the next fault's start (or the end of the
observation). In it the client-visible outage is measured: from the first failed
delivery after the fault started to the first successful one after that
(`outage`), and from the last success before to that first success after (`gap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaos.judge.history import Expectation, Fault, History
from chaos.judge.serving import Interval, failovers, service_intervals, settled_at, takeovers


def outage(h: History, start: float, end: float) -> dict[str, Any]:
    """The client's view of [start, end): failed deliveries, outage and gap (module doc)."""
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


def healed(f: Fault) -> float:
    """The heal, or the start for a fault that has none (a kill is over at once)."""
    return f.heal if f.heal is not None else f.start


@dataclass(frozen=True)
class FaultWindow:
    """One fault, judged from its start to `end` (the next fault's start, or the end)."""

    fault: Fault
    end: float
    settled: float | None  # from when exactly one node served until `end` (None: never)
    client: dict[str, Any]  # outage(): failed, outage, gap

    @property
    def healed(self) -> float:
        return healed(self.fault)

    def report(self) -> dict[str, Any]:
        """The verdict's `outages` entry for this fault."""
        f = self.fault
        out = {"fault": f.name, "start": f.start, "heal": f.heal, **self.client}
        out["settled_after_heal"] = (
            None if self.settled is None else round(self.settled - self.healed, 3)
        )
        return out


@dataclass(frozen=True)
class Evidence:
    """A run to judge: the history, the scenario's promise, and the shared measurements."""

    history: History
    expect: Expectation
    # With the real mail node, the messages read back from the mailboxes over IMAP
    # (chaos/judge/readback.py); None: lost mail is judged against the store.
    delivered: set[int] | None
    end: float  # the end of the observation
    faults: list[Fault]
    intervals: list[Interval]
    windows: list[FaultWindow]  # one per fault, in fault order
    takeovers: list[Interval]
    failovers: int

    @classmethod
    def of(cls, h: History, expect: Expectation, delivered: set[int] | None = None) -> Evidence:
        end = h.observed_end
        faults = h.faults()
        intervals = service_intervals(h)
        windows = []
        for i, f in enumerate(faults):
            window_end = faults[i + 1].start if i + 1 < len(faults) else end
            windows.append(
                FaultWindow(
                    f,
                    window_end,
                    settled_at(intervals, healed(f), window_end),
                    outage(h, f.start, window_end),
                )
            )
        taken = takeovers(intervals, faults)
        return cls(
            h,
            expect,
            delivered,
            end,
            faults,
            intervals,
            windows,
            taken,
            failovers(intervals, taken),
        )

    def in_force_until(self, f: Fault) -> float:
        """The end of fault `f`: its heal, or the end of the observation when never healed."""
        return f.heal if f.heal is not None else self.end
