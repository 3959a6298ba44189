"""What a scenario is: its fault (injected through Ctx), its expectation, its options.

Each scenario is data (number, name, description, the judge's Expectation) plus
one small function that injects its fault(s) through `Ctx.fault`, which records
`fault_start` and `fault_heal` in the history and always heals, even when the
body fails. A fault made of several steps (a windowed fault, a soak schedule) is
one `Composite`: one fault for the checker, each step recorded as
`nemesis_start` / `nemesis_heal` in events/lab.jsonl.

The scenarios themselves: chaos/faults/core_scenarios.py (1-14),
chaos/faults/edge_scenarios.py (15-32), listed in chaos/faults/catalog.py.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from chaos.faults import nemesis, triggers
from chaos.judge.history import Expectation
from chaos.lab.cluster import Cluster
from chaos.layout import MAIL_HOSTS


@dataclass
class Ctx:
    cluster: Cluster
    rng: random.Random
    active: str  # the node serving when the scenario began
    trigger: str | None = None  # when a windowed fault fires (chaos/faults/triggers.py)

    @property
    def standby(self) -> str:
        return next(n for n in MAIL_HOSTS if n != self.active)

    def failed_over(self) -> bool:
        return self.cluster.serving() == {self.standby}

    def fault(
        self,
        name: str,
        apply: Callable[[], nemesis.Heal],
        hold: float,
        until: Callable[[], bool] | None = None,
        after: float = 2.0,
    ) -> None:
        """Inject, hold (`hold` seconds, or until `until()` holds plus `after`), heal."""
        lab = self.cluster.lab
        lab.record("fault_start", fault=name, active=self.active)
        heal: nemesis.Heal = nemesis.nothing
        try:
            heal = apply()
            deadline = time.monotonic() + hold
            while time.monotonic() < deadline:
                if until is not None and until():
                    time.sleep(after)
                    break
                time.sleep(0.2)
        finally:
            heal()
            lab.record("fault_heal", fault=name)


@dataclass(frozen=True)
class Scenario:
    number: int
    name: str
    description: str
    expect: Expectation
    inject: Callable[[Ctx], None]
    fenced_store: bool = False
    mail: str | None = None  # "postfix": the real mail node (--mail postfix)
    trigger: str | None = None  # a scenario that targets a window: its default trigger
    # Judged on CPU timing (a quota, sub-T/2 pauses): `run --jobs K` runs it alone, with
    # no other lab stealing the cores its margins were measured on.
    exclusive: bool = False


class Composite:
    """One checker fault made of steps, healed in reverse order however the body ends."""

    def __init__(self, x: Ctx, name: str):
        self.x, self.name = x, name
        self.heals: list[tuple[str, nemesis.Heal]] = []

    def __enter__(self) -> Composite:
        self.x.cluster.lab.record("fault_start", fault=self.name, active=self.x.active)
        return self

    def step(self, label: str, apply: Callable[[], nemesis.Heal]) -> None:
        lab = self.x.cluster.lab
        lab.record("nemesis_start", what=label)
        self.heals.append((label, apply()))

    def heal(self, label: str | None = None) -> None:
        """Heal the named step (default: the latest)."""
        k = len(self.heals) - 1
        if label is not None:
            k = next(i for i, (name, _) in enumerate(self.heals) if name == label)
        name, fn = self.heals.pop(k)
        try:
            fn()
        finally:
            self.x.cluster.lab.record("nemesis_heal", what=name)

    def wait(self, spec: triggers.Armed, timeout: float, what: str) -> bool:
        hit = spec.wait(timeout)
        if hit is None:
            self.x.cluster.lab.record("trigger_missed", trigger=str(spec.trigger), step=what)
            return False
        self.x.cluster.lab.record("trigger_fired", trigger=str(spec.trigger), step=what)
        return True

    def hold(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until is not None and until()):
            time.sleep(0.1)

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        try:
            while self.heals:
                self.heal()
        finally:
            self.x.cluster.lab.record("fault_heal", fault=self.name)
