"""`python -m chaos table`: aggregation of many runs' results.json into the results table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaos.__main__ import main
from chaos.judge.table import aggregate, load, percentile, render, run_outage


def result(
    number: int,
    name: str,
    outages: list[float | None],
    commit: str | None = "abc",
    violations: int = 0,
) -> dict[str, Any]:
    return {
        "scenario": name,
        "number": number,
        "passed": violations == 0,
        "violations": [{"rule": "r", "message": "m"}] * violations,
        "outages": [{"failed": 1, "outage": o, "gap": None} for o in outages],
        **({"commit": commit} if commit is not None else {}),
    }


def test_percentile_is_nearest_rank() -> None:
    values = [float(x) for x in range(1, 21)]  # 1..20
    assert percentile(values, 95) == 19.0
    assert percentile(values, 50) == 10.0
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 95) is None


def test_run_outage_is_the_longest_recovered_one() -> None:
    assert run_outage(result(1, "a", [1.5, 4.25])) == 4.25
    assert run_outage(result(1, "a", [None, 2.0])) == 2.0  # never recovered: a violation
    assert run_outage(result(1, "a", [])) is None
    assert run_outage(result(1, "a", [None])) is None


def test_aggregate_combines_runs_of_different_commits_per_scenario() -> None:
    runs = [result(3, "c", [2.0 + i], commit="aaa") for i in range(10)]
    runs += [result(3, "c", [20.0], commit="bbb", violations=2)]
    runs += [result(1, "a", [], commit=None)]
    rows = aggregate(runs)
    assert [r.number for r in rows] == [1, 3]
    a, c = rows
    assert (a.runs, a.passed, a.violations, a.median, a.p95) == (1, 1, 0, None, None)
    assert a.commits == ["unknown"]
    assert (c.runs, c.passed, c.violations) == (11, 10, 2)
    assert c.median == 7.0  # 2..11 and 20: the 6th of 11
    assert c.p95 == 20.0
    assert c.commits == ["aaa", "bbb"]


def test_render_is_the_markdown_results_table() -> None:
    text = render(aggregate([result(8, "power-off", [3.0, 1.0]), result(8, "power-off", [5.0])]))
    lines = text.splitlines()
    assert lines[0].startswith("| # | scenario | runs | passed | violations | outage median")
    assert "| 8 | power-off | 2 | 2 | 0 | 4.00 s | 5.00 s | abc |" in lines
    assert lines[-1] == "2 runs of 1 scenarios, 0 violations."


def test_table_command_reads_nested_run_folders_and_names_bad_files(
    tmp_path: Path, capsys: Any
) -> None:
    for run, outage in (("r1/01-kill", 1.0), ("r2/01-kill", 3.0)):
        d = tmp_path / "pass" / run
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(result(1, "kill", [outage])))
    assert main(["table", str(tmp_path / "pass")]) == 0
    assert "| 1 | kill | 2 | 2 | 0 | 2.00 s | 3.00 s | abc |" in capsys.readouterr().out

    bad = tmp_path / "pass" / "r3" / "02-x"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text("{not json")
    assert main(["table", str(tmp_path / "pass")]) == 2
    assert str(bad / "results.json") in capsys.readouterr().err
    _, problems = load([tmp_path / "missing"])
    assert problems == [f"{tmp_path / 'missing'}: not a folder"]
