"""`unwarranted_failover`, `no_failover`, `too_many_takeovers`: takeovers against the scenario.

A takeover has a cost (the client waits, queues move), so a scenario says whether
one is warranted (Expectation.failover) and how many it tolerates
(Expectation.max_takeovers). Both rules read the takeovers measured once
(chaos/judge/serving.py: a service starting after the first fault began; a
failover when it changed the serving node) and judge nothing when the run had no
fault.

`failover_mode` fails on
* "forbidden": any takeover at all (a restart on the same node counts);
* "forbidden-during-fault": a takeover between a fault's start and its heal;
* "required": no failover (the serving node never changed).
`too_many_takeovers` fails on more takeovers than the bound.
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult, Violation


def failover_mode(ev: Evidence) -> RuleResult:
    mode, taken = ev.expect.failover, ev.takeovers
    out: list[Violation] = []
    if not ev.faults:
        return RuleResult("failover_mode", out)
    if mode == "forbidden" and taken:
        out.append(
            Violation(
                "unwarranted_failover",
                f"{len(taken)} takeover(s) where none was warranted: "
                + ", ".join(f"{i.node} at {i.start:.3f} (epoch {i.epoch})" for i in taken),
            )
        )
    if mode == "forbidden-during-fault":
        during = [
            i
            for i in taken
            for f in ev.faults
            if f.start < i.start < (f.heal if f.heal is not None else float("inf"))
        ]
        if during:
            out.append(
                Violation(
                    "unwarranted_failover",
                    "takeover during the fault: "
                    + ", ".join(f"{i.node} at {i.start:.3f}" for i in during),
                )
            )
    if mode == "required" and ev.failovers == 0:
        out.append(Violation("no_failover", "the fault required a failover and none happened"))
    return RuleResult("failover_mode", out)


def too_many_takeovers(ev: Evidence) -> RuleResult:
    bound, count = ev.expect.max_takeovers, len(ev.takeovers)
    if not ev.faults or bound is None or count <= bound:
        return RuleResult.of("too_many_takeovers", [])
    return RuleResult.of("too_many_takeovers", [f"{count} takeovers, at most {bound} expected"])
