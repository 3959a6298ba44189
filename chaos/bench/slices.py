"""Judging a benchmark lab run: the checker over each case's slice of the history.

Several cases run one after another in one lab (one history). Each case is
marked in `events/lab.jsonl` by `bench_case` records (phase start/end); each
repetition is one `fault_start`/`fault_heal` pair named `<case> #<k>`. A case's
slice of the history keeps what happened inside its window, with the service
intervals clipped to it, so the checker (chaos/judge/checker.py) judges every case on
its own: overlapping service intervals (split brain), lost acknowledged mail.

The outage of a repetition is what the client felt: the longest stretch between
two acknowledged deliveries, from the last acknowledgement before the fault to
the first one after it, within the repetition's window (0 when no delivery
failed in it; None when none succeeded after the fault).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.bench import causes as bench_causes
from chaos.bench import phases as bench_phases
from chaos.judge.checker import Verdict, check, overlaps, service_intervals
from chaos.judge.history import Expectation, History, ServiceEvent, load_history
from chaos.judge.timeline import draw
from chaos.layout import ZK_HOSTS
from chaos.records import read_records


@dataclass
class CaseResult:
    key: str
    system: str
    title: str
    run_dir: Path
    reps: list[dict[str, Any]] = field(default_factory=list)
    overlaps: int = 0
    overlap_s: float = 0.0
    overlap_writes: int = 0  # accepted store writes while two nodes served
    lost: int = 0
    stale_writes: int = 0
    violations: list[str] = field(default_factory=list)
    error: str | None = None
    timeline: str | None = None

    def outages(self) -> list[float | None]:
        return [r.get("outage") for r in self.reps]

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "system": self.system,
            "title": self.title,
            "run_dir": str(self.run_dir),
            "timeline": self.timeline,
            "reps": self.reps,
            "overlaps": self.overlaps,
            "overlap_s": round(self.overlap_s, 3),
            "overlap_writes": self.overlap_writes,
            "lost": self.lost,
            "stale_writes": self.stale_writes,
            "violations": self.violations,
            "error": self.error,
        }


def client_outage(h: History, start: float, end: float) -> float | None:
    window = [d for d in h.deliveries if start <= d.t_start < end]
    if not window:
        return None  # the client sent nothing: no measurement (never "no outage")
    if all(d.ok for d in window):
        return 0.0
    acks = sorted(d.t_end for d in h.deliveries if d.ok)
    before = [t for t in acks if t < start]
    inside = [t for t in acks if start <= t < end]
    if not inside:
        return None
    points = before[-1:] + inside
    return round(max((b - a for a, b in zip(points, points[1:], strict=False)), default=0.0), 3)


def sliced(h: History, lo: float, hi: float) -> History:
    """The part of `h` in [lo, hi], service intervals clipped to it (an interval open
    at `lo` starts there, one still open at `hi` stays open to the end)."""
    service: list[ServiceEvent] = []
    for i in service_intervals(h):
        if i.proof != "events" or i.end < lo or i.start > hi:
            continue
        service.append(ServiceEvent(i.node, "service_up", max(i.start, lo), i.epoch))
        if i.end < min(hi, h.observed_end):
            service.append(ServiceEvent(i.node, "service_down", i.end, i.epoch))
    return History(
        nodes=h.nodes,
        service=service,
        writes=[w for w in h.writes if lo <= w.t <= hi],
        deliveries=[d for d in h.deliveries if lo <= d.t_start and d.t_end <= hi],
        lab=[e for e in h.lab if lo <= e.t <= hi],
        logs=h.logs,
        end=hi,
    )


def case_windows(run_dir: Path) -> dict[str, tuple[float, float]]:
    starts: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for r in read_records(run_dir / "events" / "lab.jsonl"):
        if r.get("event") != "bench_case":
            continue
        if r.get("phase") == "start":
            starts[r["key"]] = float(r["t"])
        elif r["key"] in starts:
            out[r["key"]] = (starts[r["key"]], float(r["t"]))
    return out


def daemon_events(run_dir: Path, nodes: tuple[str, ...]) -> list[tuple[float, str, dict[str, Any]]]:
    """(time, node, record) of every failoverd log line with a timestamp, in time order."""
    out = [
        e for node in nodes for e in bench_phases.read_log(run_dir / node / "failoverd.log", node)
    ]
    return sorted(out, key=lambda x: x[0])


def phases(
    events: list[tuple[float, str, dict[str, Any]]], start: float, end: float
) -> dict[str, float] | None:
    """Where a takeover's time went: fault -> the new active contends -> fenced -> served."""
    t_contend = t_promoting = t_active = None
    for t, _node, r in events:
        if not start <= t < end or r.get("event") != "role_changed":
            continue
        role = r.get("role")
        if role == "fencing" and t_contend is None:
            t_contend = t
        elif role == "promoting" and t_contend is not None and t_promoting is None:
            t_promoting = t
        elif role == "active" and t_promoting is not None:
            t_active = t
            break
    if t_contend is None or t_promoting is None or t_active is None:
        return None
    return {
        "to_contend_s": round(t_contend - start, 3),
        "fence_s": round(t_promoting - t_contend, 3),
        "start_s": round(t_active - t_promoting, 3),
    }


@dataclass
class StepSources:
    """What the step-by-step split of a takeover reads (chaos/bench/phases.py)."""

    fence_self: list[Any] = field(default_factory=list)  # fence-self's log lines
    labels: dict[str, str] = field(default_factory=dict)  # resource name -> mount, VIP, ...
    planned: frozenset[str] = frozenset()  # case keys that are planned switchovers


def served_at(sub: History, node: str | None, start: float, end: float) -> float | None:
    if node is None:
        return None
    service = [(e.t, e.node, e.event) for e in sub.service]
    acks = [(d.t_start, d.t_end) for d in sub.deliveries if d.ok]
    return bench_phases.first_served(service, acks, node, start, end)


def judge_case(
    h: History,
    result: CaseResult,
    lo: float,
    hi: float,
    events: Any,
    zk: Any = None,
    delivered: set[int] | None = None,
    steps: StepSources | None = None,
) -> Verdict:
    """`delivered`: the real mail node's mailboxes, read over IMAP at the end (lost
    mail is judged against them, not against the toy store's writes)."""
    sub = sliced(h, lo, hi)
    verdict = check(sub, Expectation("allowed", settle=120.0), delivered)
    mine = [f for f in sub.faults() if f.name.startswith(f"{result.key} #")]
    for i, f in enumerate(mine):
        end = mine[i + 1].start if i + 1 < len(mine) else hi
        if i < len(result.reps):
            rep = result.reps[i]
            rep["outage"] = client_outage(sub, f.start, end)
            rep["fault_s"] = round((f.heal or f.start) - f.start, 3)
            if events:
                rep["phases"] = phases(events, f.start, end)
            after = rep.get("serving_after") or []
            new = after[0] if len(after) == 1 and after[0] != rep.get("active_before") else None
            served = served_at(sub, new, f.start, end)
            if not events and served is not None:  # keepalived: no log of ours to split
                rep["steps"] = {bench_phases.SERVED: round(served - f.start, 3)}
            if events and steps is not None:
                rep["steps"] = bench_phases.takeover_steps(
                    events,
                    f.start,
                    end,
                    fence_self=steps.fence_self,
                    labels=steps.labels,
                    old_active=rep.get("active_before"),
                    planned=result.key in steps.planned,
                    served_at=served,
                )
            if events and zk is not None:
                rep["causes"] = bench_causes.causes(
                    result.run_dir, zk[0], events, zk[1], f.start, end
                )
    pairs = overlaps(verdict.intervals)
    result.overlaps = len(pairs)
    result.overlap_s = sum(max(0.0, min(a.end, b.end) - max(a.start, b.start)) for a, b in pairs)
    spans = [(max(a.start, b.start), min(a.end, b.end)) for a, b in pairs]
    result.overlap_writes = sum(
        1 for w in sub.writes if w.accepted and any(x <= w.t <= y for x, y in spans)
    )
    acked = {d.n for d in sub.deliveries if d.ok}
    stored = {w.msg for w in h.writes if w.accepted} if delivered is None else delivered
    result.lost = len(acked - stored)
    result.stale_writes = sum(1 for v in verdict.violations if v.rule == "stale_epoch")
    ignore = {"not_settled", "outage", "no_failover"}
    result.violations = sorted({v.rule for v in verdict.violations} - ignore)
    try:
        png = result.run_dir / f"timeline-{result.key}.png"
        draw(sub, verdict, f"{result.system}: {result.title}", png)
        result.timeline = str(png)
    except Exception as e:  # noqa: BLE001 - a missing picture must not hide the numbers
        result.violations.append(f"timeline: {type(e).__name__}: {e}")
    return verdict


def judge_run(
    run_dir: Path,
    results: list[CaseResult],
    with_phases: bool,
    delivered: set[int] | None = None,
    planned: frozenset[str] = frozenset(),
) -> None:
    """Judge every case of one lab run in place, and write bench-cases.json.
    `delivered`: the messages found in the real mail node's mailboxes (--mail postfix)."""
    h = load_history(run_dir)
    windows = case_windows(run_dir)
    events = daemon_events(run_dir, h.nodes) if with_phases else None
    steps = None
    if with_phases:
        steps = StepSources(
            bench_phases.fence_self_events(run_dir, h.nodes),
            bench_phases.node_labels(run_dir, h.nodes),
            planned,
        )
    # The ZooKeeper minority case also explains its time (chaos/bench/causes.py).
    zk = None
    if with_phases and any(r.key == "zk-minority" for r in results):
        zk = (bench_causes.read_lab(run_dir), bench_causes.zk_events(run_dir, list(ZK_HOSTS)))
    for r in results:
        if r.key in windows:
            lo, hi = windows[r.key]
            # From the case's start (the cluster was ready: one node serving, and
            # acknowledgements before the first fault) to its end.
            zr = zk if r.key == "zk-minority" else None
            judge_case(h, r, lo, hi, events, zr, delivered, steps)
    whole = check(h, Expectation("allowed", settle=120.0), delivered)
    summary = {
        "overlaps_whole_run": len(overlaps(whole.intervals)),
        "cases": [r.to_json() for r in results],
    }
    (run_dir / "bench-cases.json").write_text(json.dumps(summary, indent=1))
