"""The `--jobs K` scheduler's rules (pure): exclusive scenarios run alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from chaos.faults.catalog import find
from chaos.parallel import may_start, order


def item(token: str, exclusive: bool | None = None):  # type: ignore[no-untyped-def]
    s = find(token)
    if exclusive is not None:
        s = replace(s, exclusive=exclusive)
    return (s, Path(s.name), 1)


def test_cpu_timed_scenarios_are_exclusive() -> None:
    assert {s for s in ("20", "21", "29") if find(s).exclusive} == {"20", "21", "29"}
    assert not find("1").exclusive


def test_exclusive_scenarios_start_last() -> None:
    plan = [item("29"), item("1"), item("20"), item("3")]
    assert order(plan) == [1, 3, 0, 2]


def test_shared_scenarios_fill_up_to_k() -> None:
    assert may_start(item("1"), [], 2)
    assert may_start(item("1"), [item("3")], 2)
    assert not may_start(item("1"), [item("3"), item("8")], 2)


def test_an_exclusive_scenario_runs_with_nothing_beside_it() -> None:
    assert not may_start(item("29"), [item("1")], 3)
    assert may_start(item("29"), [], 3)
    assert not may_start(item("1"), [item("29")], 3)
    assert not may_start(item("20"), [item("29")], 3)
