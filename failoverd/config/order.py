"""The order of the resources: which one waits for which (`name:` and `after:`).

Without `after:` anywhere, the list order, one at a time: each resource waits for
the one listed before it (what failoverd always did). Once any resource has
`after:`, each resource waits for exactly

* the resources its `after:` names (`after: []`: for none), or,
* without `after:`, the resource listed just before it (the first: for none),

so the list order still holds wherever `after:` does not say otherwise. A start
runs each resource as soon as everything it waits for has started; a stop runs
the edges backwards: a resource stops once everything that waits for it stopped.

A resource is named by its `name:`, or else by the name failoverd publishes for
it (`resource_name`). Pure: the file's check (config/resources.py) and the
runner (failoverd/resources/order.py) both plan with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from failoverd.config.model import (
    CommandResourceConfig,
    OcfResourceConfig,
    ResourceConfig,
    SystemdResourceConfig,
)


def resource_name(cfg: ResourceConfig, key: str) -> str:
    """The resource's `name:`, or else the one derived from its kind: safe to publish
    (never a command line or a parameter value, failoverd/resources/base.py says
    why). `key`: where it is defined, "resources[2]"; it names commands and OCF
    agents, whose settings may hold secrets."""
    if cfg.name:
        return cfg.name
    if isinstance(cfg, SystemdResourceConfig):
        return "systemd " + " ".join(cfg.units)
    if isinstance(cfg, CommandResourceConfig):
        return f"command {key}"
    if isinstance(cfg, OcfResourceConfig):
        return f"ocf {cfg.agent} {key}"
    return f"vip {cfg.address} on {cfg.interface}"


@dataclass(frozen=True)
class Order:
    """For each resource (by list index), the ones it waits for at start."""

    needs: tuple[frozenset[int], ...]

    @property
    def serial(self) -> bool:
        """The list order, one at a time: each waits for exactly the one before it."""
        return all(
            n == (frozenset({i - 1}) if i else frozenset()) for i, n in enumerate(self.needs)
        )

    def backwards(self) -> Order:
        """The stop order: each waits for every resource that waits for it."""
        n = len(self.needs)
        return Order(tuple(frozenset(j for j in range(n) if i in self.needs[j]) for i in range(n)))

    def groups(self) -> list[list[int]]:
        """The resources by depth: a group starts together once those before it are up
        (as a runner without durations would). Only for an order without a cycle."""
        depth: dict[int, int] = {}

        def level(i: int) -> int:
            if i not in depth:
                depth[i] = 1 + max((level(j) for j in self.needs[i]), default=-1)
            return depth[i]

        for i in range(len(self.needs)):
            level(i)
        return [
            [i for i in sorted(depth) if depth[i] == d]
            for d in range(max(depth.values(), default=-1) + 1)
        ]

    def longest(self, cost: Sequence[float]) -> float:
        """The critical path: the largest total `cost` along one chain of waits."""
        total: dict[int, float] = {}

        def through(i: int) -> float:
            if i not in total:
                total[i] = cost[i] + max((through(j) for j in self.needs[i]), default=0.0)
            return total[i]

        return max((through(i) for i in range(len(self.needs))), default=0.0)

    def cycle(self) -> list[int] | None:
        """One cycle as indices [a, b, ..., a], a waiting for b and so on; None if none."""
        state: dict[int, int] = {}  # 1: on the current path, 2: done
        path: list[int] = []

        def visit(i: int) -> list[int] | None:
            state[i] = 1
            path.append(i)
            for j in sorted(self.needs[i]):
                if state.get(j) == 1:
                    return [*path[path.index(j) :], j]
                if j not in state and (found := visit(j)):
                    return found
            state[i] = 2
            path.pop()
            return None

        for i in range(len(self.needs)):
            if i not in state and (found := visit(i)):
                return found
        return None


def serial(count: int) -> Order:
    """The list order, one at a time."""
    return Order(tuple(frozenset({i - 1}) if i else frozenset() for i in range(count)))


def plan(names: Sequence[str], afters: Sequence[Sequence[str] | None]) -> Order:
    """Who waits for whom. A name that several resources share stands for all of them;
    one that matches none (or only the resource itself) is left out: the file's check
    reports both (config/resources.py), and the runner falls back to the list order
    for a set it cannot plan (failoverd/resources/order.py)."""
    if all(a is None for a in afters):
        return serial(len(names))
    needs = []
    for i, after in enumerate(afters):
        if after is None:
            needs.append(frozenset({i - 1}) if i else frozenset())
        else:
            needs.append(frozenset(j for j, n in enumerate(names) if n in after and j != i))
    return Order(tuple(needs))


def unknown(names: Sequence[str], afters: Sequence[Sequence[str] | None]) -> list[str]:
    """The `after:` entries that name no resource but the one that gives them."""
    return [
        a
        for i, after in enumerate(afters)
        for a in after or ()
        if not any(n == a and j != i for j, n in enumerate(names))
    ]
