"""The ZooKeeper-minority explanation read from synthetic lab files (chaos/bench/causes.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from chaos.bench import causes as bench_causes

T0 = datetime(2026, 11, 28, 10, 0, 0).timestamp()  # the fault, local time as log4j writes


def zk_line(dt: float, text: str) -> str:
    stamp = datetime.fromtimestamp(T0 + dt).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    return f"{stamp} INFO  [QuorumPeer[myid=1]] {text}"


def daemon(dt: float, **r: object) -> tuple[float, str, dict[str, object]]:
    stamp = datetime.fromtimestamp(T0 + dt, UTC).isoformat()
    return (T0 + dt, "mail2", {"timestamp": stamp, **r})


def test_a_leader_cut_off_is_explained_phase_by_phase(tmp_path: Path) -> None:
    for z, lines in {
        "zk1": [zk_line(1.0, "QuorumPeer: LOOKING"), zk_line(1.3, "Learner: FOLLOWING - x")],
        "zk2": [
            zk_line(-5, "ZooKeeperServer: Expiring session 0x1, timeout of 2000ms exceeded"),
            zk_line(1.01, "QuorumPeer: LOOKING"),
            zk_line(1.3, "Leader: LEADING - LEADER ELECTION TOOK - 200 MS"),
            zk_line(3.4, "ZooKeeperServer: Expiring session 0x2, timeout of 2000ms exceeded"),
        ],
        "zk3": [zk_line(1.0, "Leader: Shutdown called.")],
    }.items():
        (tmp_path / z).mkdir()
        (tmp_path / z / "zookeeper.log").write_text("\n".join(lines) + "\n")
    lab = [
        {
            "event": "partition",
            "t": T0 + 0.01,
            "minority": ["mail1", "zk3"],
            "majority": ["zk1", "zk2", "mail2", "client"],
            "minority_server": "zk3",
            "minority_mode": "leader",
            "standby": "mail2",
            "standby_server": "zk1",
        }
    ]
    events = [
        daemon(1.0, event="Connection dropped: socket connection broken"),
        daemon(1.9, event="Zookeeper connection established, state: CONNECTED"),
        daemon(3.41, event="role_changed", role="fencing"),
        daemon(
            3.42,
            event="fence_method_finished",
            method="ssh",
            ok=False,
            took_ms=0,
            reason="skipped: its readiness probe 1.4s ago failed: timeout",
        ),
        daemon(
            3.49,
            event="fence_method_finished",
            method="command",
            ok=True,
            took_ms=65,
            reason="exited 0",
        ),
    ]
    zk = bench_causes.zk_events(tmp_path, ["zk1", "zk2", "zk3"])
    got = bench_causes.causes(tmp_path, lab, events, zk, T0, T0 + 20)
    assert got is not None
    fence = got.pop("fence")
    assert got == {
        "minority_mode": "leader",
        "minority_server": "zk3",
        "standby_server": "zk1",
        "leader_lost_s": 1.0,
        "new_leader_s": 1.3,
        "session_expired_s": 3.4,
        "standby_disconnected_s": 1.0,
        "standby_reconnected_s": 1.9,
        "standby_session_lost": False,
        "contend_s": 3.41,
    }
    assert [(m["method"], m["skipped"], m["took_s"]) for m in fence] == [
        ("ssh", True, 0.0),
        ("command", False, 0.065),
    ]
    rows = bench_causes.split_rows([{"outage": 3.8, "causes": {**got, "fence": fence}}])
    assert [(r["mode"], r["median"], r["ssh_skipped"], r["fence_s"]) for r in rows] == [
        ("leader", 3.8, 1, 0.065)
    ]
    assert "| leader | 1 | 3.80 (3.80) | 1.00 | 1.30 | 3.40 |" in bench_causes.split_table(rows)


def test_a_run_without_the_partition_record_explains_nothing(tmp_path: Path) -> None:
    lab = [{"event": "partition", "t": T0, "minority": [], "majority": []}]
    assert bench_causes.causes(tmp_path, lab, [], [], T0, T0 + 10) is None
    assert json.dumps(bench_causes.split_rows([{"outage": 1.0, "causes": None}])) == "[]"
