"""When a fault fires: now, after a random delay, or on a node's own event.

The dangerous windows of a failover are moments inside one node's transition
(fencing, promoting, demoting), so a nemesis can wait for that node to *say* it
is there: the trigger tails the node's failoverd log (JSON lines, chaos/lab/nodes.py
writes it into the run folder) from the moment it is armed, every few
milliseconds, and fires on the first matching line. Only log event names are
relied on, never the daemon's code structure:

    fence_planned          event fence_planned (lock won, targets chosen, chain not begun)
    fencing                event role_changed with role=fencing (lock just won)
    promoting              event role_changed with role=promoting (fenced; resources next)
    resource_starting      event resource_starting (lease re-checked, the start command of
                           that resource is next; one line per resource)
    before_resource_start  the same line as resource_starting (older name, kept)
    demoting               event role_changed with role=demoting
    resource_started       event resource_started (the first resource is up: between
                           resources, e.g. the VIP up and the mail service not yet)
    fenced / promoted / demoted   the events of those names

A trigger spec (CLI `--trigger`, scenario parameter):
    now | delay:LO-HI (seconds, drawn from the run's seed) | EVENT[@WHO]
where WHO is `active` or `standby` (the roles when the scenario began) or a node name.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.records import json_objects

POLL = 0.005  # log tail interval: the nemesis fires within ~5 ms of the line

Match = Callable[[dict[str, Any]], bool]


def _role(role: str) -> Match:
    return lambda r: r.get("event") == "role_changed" and r.get("role") == role


def _event(name: str) -> Match:
    return lambda r: r.get("event") == name


EVENTS: dict[str, Match] = {
    "fence_planned": _event("fence_planned"),
    "fencing": _role("fencing"),
    "promoting": _role("promoting"),
    "resource_starting": _event("resource_starting"),
    "before_resource_start": _event("resource_starting"),
    "demoting": _role("demoting"),
    "resource_started": _event("resource_started"),
    "fenced": _event("fenced"),
    "promoted": _event("promoted"),
    "demoted": _event("demoted"),
}


@dataclass(frozen=True)
class Trigger:
    kind: str  # "now" | "delay" | "event"
    event: str | None = None
    who: str = "standby"
    low: float = 0.0
    high: float = 0.0

    def __str__(self) -> str:
        if self.kind == "delay":
            return f"delay:{self.low:g}-{self.high:g}"
        if self.kind == "event":
            return f"{self.event}@{self.who}"
        return "now"


def parse(spec: str, default_who: str = "standby") -> Trigger:
    """`now`, `delay:1-4`, `promoting`, `demoting@active`, `fence_planned@mail2`."""
    spec = spec.strip()
    if spec == "now":
        return Trigger("now")
    if spec.startswith("delay:"):
        try:
            lo, _, hi = spec[len("delay:") :].partition("-")
            low, high = float(lo), float(hi or lo)
        except ValueError:
            raise ValueError(f"trigger {spec!r}: expected delay:LOW-HIGH in seconds") from None
        if not 0 <= low <= high:
            raise ValueError(f"trigger {spec!r}: need 0 <= LOW <= HIGH")
        return Trigger("delay", low=low, high=high)
    event, _, who = spec.partition("@")
    if event not in EVENTS:
        known = ", ".join(["now", "delay:LO-HI", *EVENTS])
        raise ValueError(f"unknown trigger {spec!r}; known: {known}")
    return Trigger("event", event, who or default_who)


class LogTail:
    """Follows one JSON-lines log from the moment it is created (older lines are ignored)."""

    def __init__(self, path: Path):
        self.path = path
        self.pos = path.stat().st_size if path.exists() else 0
        self.buf = b""

    def lines(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self.pos:  # a new file: start over
                    self.pos = 0
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return []
        self.pos += len(data)
        self.buf += data
        *complete, self.buf = self.buf.split(b"\n")
        return json_objects(complete)

    def wait(self, match: Match, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.lines():
                if match(rec):
                    return rec
            if time.monotonic() > deadline:
                return None
            time.sleep(POLL)


class Armed:
    """A trigger armed before the fault that leads to its window (nothing is missed)."""

    def __init__(self, trigger: Trigger, log: Path | None, rng: random.Random):
        self.trigger = trigger
        self.tail = LogTail(log) if log is not None else None
        self.delay = rng.uniform(trigger.low, trigger.high) if trigger.kind == "delay" else 0.0

    def wait(self, timeout: float) -> dict[str, Any] | None:
        """Block until the trigger fires; the matching log line ({} for now/delay), or None."""
        if self.trigger.kind == "event":
            assert self.tail is not None and self.trigger.event is not None
            return self.tail.wait(EVENTS[self.trigger.event], timeout)
        time.sleep(self.delay)
        return {}


def arm(spec: str | Trigger, run_dir: Path, roles: dict[str, str], rng: random.Random) -> Armed:
    """Arm `spec` against the run's logs; `roles` maps active/standby to node names."""
    trigger = parse(spec) if isinstance(spec, str) else spec
    log = None
    if trigger.kind == "event":
        node = roles.get(trigger.who, trigger.who)
        log = run_dir / node / "failoverd.log"
    return Armed(trigger, log, rng)
