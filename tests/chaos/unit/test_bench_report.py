"""The benchmark report's comparison with keepalived and its targets."""

from __future__ import annotations

from typing import Any

from chaos.bench import report


def case(key: str, system: str, outages: list[float]) -> dict[str, Any]:
    reps = [{"outage": o} for o in outages]
    return {"key": key, "system": system, "title": key, "reps": reps}


def rows() -> list[dict[str, Any]]:
    cases = [
        case("crash", "failoverd", [2.4, 2.6, 2.6]),
        case("isolate", "failoverd", [3.6, 3.7, 3.8]),
        case("switchover-any", "failoverd", [0.4, 0.45, 0.5]),
        case("ka-crash", "keepalived", [3.0, 3.2, 3.25]),
        case("ka-kill-daemon", "keepalived", [0.25]),
    ]
    for c in cases:
        c.update(overlaps=0, overlap_s=0.0, lost=0)
    return report.case_rows(cases, 2.0)


def test_each_failoverd_row_is_compared_with_its_keepalived_row() -> None:
    by = {r["key"]: r for r in rows()}
    assert by["crash"]["vs_keepalived"] == {"case": "ka-crash", "ratio": round(2.6 / 3.2, 2)}
    assert by["isolate"]["vs_keepalived"]["case"] == "ka-crash"
    assert by["switchover-any"]["vs_keepalived"] == {"case": "ka-kill-daemon", "ratio": 1.8}
    assert by["ka-crash"]["vs_keepalived"] is None
    assert "| 0.81 × (ka-crash) |" in report.cases_table(rows(), 2.0)


def test_targets_are_marked_met_or_missed_against_t() -> None:
    met = {t["target"].split(":")[0]: t["met"] for t in report.targets(rows(), None, None, 2.0)}
    assert met["node crash with ssh fencing (T + 0.5 s)"] is False  # 2.6 > 2.5
    assert met["isolate (T + 1.5 s)"] is False  # 3.7 > 3.5
    assert met["switchover-any"] is True  # 0.45 <= 0.5
    assert met["0 overlaps and 0 lost messages in every failoverd row"] is True
