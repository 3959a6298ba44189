"""Every scenario by number, the smoke subsets, and `find` (what `python -m chaos list`,
`run`, the tests and the benchmarks look scenarios up in)."""

from __future__ import annotations

from chaos.faults.core_scenarios import CORE_SCENARIOS
from chaos.faults.edge_scenarios import EDGE_SCENARIOS
from chaos.faults.scenario import Scenario

SCENARIOS = [*CORE_SCENARIOS, *EDGE_SCENARIOS]
SMOKE = (1, 2, 4, 5, 14)
MAIL_SMOKE = (1, 4, 8)  # CI also runs these with --mail postfix (tests/chaos/lab/test_smoke.py)


def find(token: str) -> Scenario:
    for s in SCENARIOS:
        if token in (str(s.number), s.name):
            return s
    names = ", ".join(f"{s.number}/{s.name}" for s in SCENARIOS)
    raise KeyError(f"no scenario {token!r}; known: {names}")
