"""A run's recorded history, as plain values, and the loader that reads it from a run folder.

Files of a run folder:

    events/<node>-service.jsonl   service_up / service_down, written by the service
    events/lab.jsonl              fault_start / fault_heal / power_off / power_on /
                                  observation_start / observation_end (runner, power switch)
    events/vip.jsonl              vip_held / vip_released / vip_watch_end: which node holds
                                  the service IP, polled by the runner (chaos/lab/vipwatch.py)
    store/messages.jsonl          every write attempt into the shared store, in order
    client.jsonl                  every delivery attempt and its reply
    <node>/failoverd.log          the daemon's JSON log lines (alerts, epochs, VIP starts)
    scenario.json                 the scenario's name and Expectation

Every record carries the wall time (`t`, `t_start`/`t_end`) and its twin on the
machine's one monotonic clock (`mono`, `m_start`/`m_end`; every namespace shares
CLOCK_MONOTONIC). The loader places records on the monotonic clock, shifted by the
median wall-minus-monotonic offset so the numbers still read as wall times: a
wall-clock step during a run cannot reorder the history. Records without the
twin (older runs, the daemon's own log) keep their wall time.

A line that is not a JSON record in the middle of a history file is not dropped
silently: it lands in `History.corrupt` and the checker fails the run on it.

The checker (chaos/judge/checker.py) is a pure function of a `History`; unit tests build
histories by hand.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.records import read_records

FAILOVER_MODES = ("forbidden", "forbidden-during-fault", "required", "allowed")


@dataclass(frozen=True)
class Expectation:
    """What a scenario promises.

    failover: "forbidden" — no takeover at all after the fault starts (the active
    must keep serving); "forbidden-during-fault" — none until the fault heals;
    "required" — the serving node must change; "allowed" — either, but see bounds.
    settle: seconds after each heal within which exactly one node must serve.
    quiet_after: when set, nobody may serve from this many seconds after a fault's
    start until its heal (e.g. ZooKeeper quorum lost: the active stops within T).
    """

    failover: str = "allowed"
    settle: float = 20.0
    max_takeovers: int | None = None
    require_alert: bool = False
    max_outage: float | None = None
    quiet_after: float | None = None
    # The fault must be answered with temporary failures (e.g. the store full, 31):
    # inside the fault window at least one delivery got a 4xx, and every failed one
    # got a 4xx reply — not a timeout, a refused connection or a 5xx.
    tempfail_during_fault: bool = False

    def __post_init__(self) -> None:
        if self.failover not in FAILOVER_MODES:
            raise ValueError(f"failover must be one of {FAILOVER_MODES}, not {self.failover!r}")


@dataclass(frozen=True)
class ServiceEvent:
    node: str
    event: str  # service_up | service_down
    t: float
    epoch: int | None = None


@dataclass(frozen=True)
class StoreWrite:
    msg: int | None
    node: str
    epoch: int | None
    t: float
    accepted: bool = True


@dataclass(frozen=True)
class Delivery:
    n: int
    t_start: float
    t_end: float
    code: int | None
    error: str | None = None
    server: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == 250


@dataclass(frozen=True)
class LabEvent:
    event: str
    t: float
    node: str | None = None
    fault: str | None = None


@dataclass(frozen=True)
class LogRecord:
    """One line of a daemon's log (the fields the checker uses)."""

    node: str
    event: str
    level: str
    t: float | None = None  # its `timestamp` (wall clock); None when unreadable
    role: str | None = None  # role_changed
    epoch: int | None = None  # promoted / role_changed / fenced
    resource: str | None = None  # resource_started / resource_stopped


@dataclass(frozen=True)
class VipEvent:
    """The runner's VIP watch (chaos/lab/vipwatch.py), recorded on each change.

    vip_held: first poll that saw `node` hold the VIP (at t).
    vip_released: first poll that saw it gone (at t); `last_held` is the last poll
    that still saw it. vip_watch_end: the watch stopped; `last_held` is set when the
    node still held the VIP at the last poll.
    """

    node: str
    event: str
    t: float
    last_held: float | None = None


@dataclass(frozen=True)
class Fault:
    name: str
    start: float
    heal: float | None


@dataclass
class History:
    nodes: tuple[str, ...]
    service: list[ServiceEvent] = field(default_factory=list)
    writes: list[StoreWrite] = field(default_factory=list)  # in store (acceptance) order
    deliveries: list[Delivery] = field(default_factory=list)
    lab: list[LabEvent] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    vip: list[VipEvent] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # unreadable lines, file:line
    end: float | None = None  # observation_end; None: the last recorded time

    @property
    def observed_end(self) -> float:
        if self.end is not None:
            return self.end
        ends = [e.t for e in self.lab] + [e.t for e in self.service] + [w.t for w in self.writes]
        ends += [d.t_end for d in self.deliveries]
        return max(ends, default=0.0)

    def faults(self) -> list[Fault]:
        """fault_start/fault_heal pairs in time order (a fault never healed has heal=None).

        A heal closes the latest open fault of the same name, else the latest open one.
        """
        out: list[Fault] = []
        for e in sorted(self.lab, key=lambda e: e.t):
            if e.event == "fault_start":
                out.append(Fault(e.fault or "fault", e.t, None))
            elif e.event == "fault_heal":
                open_ = [k for k, f in enumerate(out) if f.heal is None]
                named = [k for k in open_ if out[k].name == e.fault]
                if named or open_:
                    k = (named or open_)[-1]
                    out[k] = Fault(out[k].name, out[k].start, e.t)
        return out


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _wall(stamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _Clock:
    """Places records on the monotonic clock, shifted to read as wall time (module doc)."""

    def __init__(self, records: list[dict[str, Any]]):
        pairs = [(r["t"], r["mono"]) for r in records if _num(r.get("t")) and _num(r.get("mono"))]
        pairs += [
            (r["t_start"], r["m_start"])
            for r in records
            if _num(r.get("t_start")) and _num(r.get("m_start"))
        ]
        self.offset = statistics.median(t - m for t, m in pairs) if pairs else None

    def at(self, r: dict[str, Any], wall: str = "t", mono: str = "mono") -> float:
        if self.offset is not None and _num(r.get(mono)):
            return float(r[mono]) + self.offset
        return float(r[wall])


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def load_history(run_dir: Path, nodes: tuple[str, ...] = ("mail1", "mail2")) -> History:
    h = History(nodes=nodes)

    def records(path: Path) -> list[dict[str, Any]]:
        return read_records(path, h.corrupt)

    files = {
        "lab": records(run_dir / "events" / "lab.jsonl"),
        "vip": records(run_dir / "events" / "vip.jsonl"),
        "store": records(run_dir / "store" / "messages.jsonl"),
        "client": records(run_dir / "client.jsonl"),
        **{node: records(run_dir / "events" / f"{node}-service.jsonl") for node in nodes},
    }
    clock = _Clock([r for rs in files.values() for r in rs])
    for node in nodes:
        for r in files[node]:
            if r.get("event") in ("service_up", "service_down") and "t" in r:
                h.service.append(ServiceEvent(node, r["event"], clock.at(r), _int(r.get("epoch"))))
        # The daemon's own output: a stray non-JSON line (a traceback) is not history.
        for r in read_records(run_dir / node / "failoverd.log", problems=[]):
            h.logs.append(
                LogRecord(
                    node,
                    str(r.get("event", "")),
                    str(r.get("level", "")),
                    _wall(r.get("timestamp")) if r.get("timestamp") else None,
                    r.get("role") if isinstance(r.get("role"), str) else None,
                    _int(r.get("epoch")),
                    r.get("resource") if isinstance(r.get("resource"), str) else None,
                )
            )
    for r in files["store"]:
        h.writes.append(
            StoreWrite(
                _int(r.get("msg")),
                str(r.get("node")),
                _int(r.get("epoch")),
                clock.at(r),
                bool(r.get("accepted", True)),
            )
        )
    for r in files["client"]:
        h.deliveries.append(
            Delivery(
                int(r["n"]),
                clock.at(r, "t_start", "m_start"),
                clock.at(r, "t_end", "m_end"),
                _int(r.get("code")),
                r.get("error"),
                r.get("server"),
            )
        )
    for r in files["vip"]:
        last = r.get("last_held_mono")
        h.vip.append(
            VipEvent(
                str(r.get("node")),
                str(r["event"]),
                clock.at(r),
                None
                if not _num(r.get("last_held"))
                else (last + clock.offset)
                if _num(last) and clock.offset is not None
                else float(r["last_held"]),
            )
        )
    for r in files["lab"]:
        t = clock.at(r)
        h.lab.append(LabEvent(str(r["event"]), t, r.get("node"), r.get("fault")))
        if r["event"] == "observation_end":
            h.end = t
    return h


def load_expectation(run_dir: Path) -> tuple[str, Expectation]:
    info = json.loads((run_dir / "scenario.json").read_text())
    return info["name"], Expectation(**info["expect"])


def expectation_dict(e: Expectation) -> dict[str, Any]:
    return asdict(e)
