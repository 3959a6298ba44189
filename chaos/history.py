"""A run's recorded history, as plain values, and the loader that reads it from a run folder.

Files of a run folder (all times are `time.time()` of one shared clock):

    events/<node>-service.jsonl   service_up / service_down, written by the service
    events/lab.jsonl              fault_start / fault_heal / power_off / power_on /
                                  observation_start / observation_end (runner, power switch)
    store/messages.jsonl          every write attempt into the shared store, in order
    client.jsonl                  every delivery attempt and its reply
    <node>/failoverd.log          the daemon's JSON log lines (for alerts only)
    scenario.json                 the scenario's name and Expectation

The checker (chaos/checker.py) is a pure function of a `History`; unit tests build
histories by hand.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos.store import read_records

FAILOVER_MODES = ("forbidden", "forbidden-during-fault", "required", "allowed")


@dataclass(frozen=True)
class Expectation:
    """What a scenario promises.

    failover: "forbidden" — no takeover at all after the fault starts (the active
    must keep serving); "forbidden-during-fault" — none until the fault heals;
    "required" — the serving node must change; "allowed" — either, but see bounds.
    settle: seconds after each heal within which exactly one node must serve.
    """

    failover: str = "allowed"
    settle: float = 20.0
    max_takeovers: int | None = None
    require_alert: bool = False
    max_outage: float | None = None

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
    node: str
    event: str
    level: str


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
    end: float | None = None  # observation_end; None: the last recorded time

    @property
    def observed_end(self) -> float:
        if self.end is not None:
            return self.end
        ends = [e.t for e in self.lab] + [e.t for e in self.service] + [w.t for w in self.writes]
        ends += [d.t_end for d in self.deliveries]
        return max(ends, default=0.0)

    def faults(self) -> list[Fault]:
        """fault_start/fault_heal pairs in time order (a fault never healed has heal=None)."""
        out: list[Fault] = []
        for e in sorted(self.lab, key=lambda e: e.t):
            if e.event == "fault_start":
                out.append(Fault(e.fault or "fault", e.t, None))
            elif e.event == "fault_heal" and out and out[-1].heal is None:
                out[-1] = Fault(out[-1].name, out[-1].start, e.t)
        return out


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def load_history(run_dir: Path, nodes: tuple[str, ...] = ("mail1", "mail2")) -> History:
    h = History(nodes=nodes)
    for node in nodes:
        for r in read_records(run_dir / "events" / f"{node}-service.jsonl"):
            if r.get("event") in ("service_up", "service_down") and "t" in r:
                h.service.append(
                    ServiceEvent(node, r["event"], float(r["t"]), _int(r.get("epoch")))
                )
        for r in read_records(run_dir / node / "failoverd.log"):
            h.logs.append(LogRecord(node, str(r.get("event", "")), str(r.get("level", ""))))
    for r in read_records(run_dir / "store" / "messages.jsonl"):
        h.writes.append(
            StoreWrite(
                _int(r.get("msg")),
                str(r.get("node")),
                _int(r.get("epoch")),
                float(r["t"]),
                bool(r.get("accepted", True)),
            )
        )
    for r in read_records(run_dir / "client.jsonl"):
        h.deliveries.append(
            Delivery(
                int(r["n"]),
                float(r["t_start"]),
                float(r["t_end"]),
                _int(r.get("code")),
                r.get("error"),
                r.get("server"),
            )
        )
    for r in read_records(run_dir / "events" / "lab.jsonl"):
        h.lab.append(LabEvent(str(r["event"]), float(r["t"]), r.get("node"), r.get("fault")))
        if r["event"] == "observation_end":
            h.end = float(r["t"])
    return h


def load_expectation(run_dir: Path) -> tuple[str, Expectation]:
    info = json.loads((run_dir / "scenario.json").read_text())
    return info["name"], Expectation(**info["expect"])


def expectation_dict(e: Expectation) -> dict[str, Any]:
    return asdict(e)
