# ruff: noqa: E501 - the log excerpts are whole lines as the lab writes them
"""The step-by-step split of a takeover, from recorded log excerpts of the real mail node."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from chaos.bench import phases, report

NODE_YAML = """\
resources:
- type: ocf
  agent: heartbeat:Filesystem
  params: {device: /dev/loop7, directory: /run/store, fstype: ext4}
- type: vip
  address: 198.51.100.25/24
  interface: eth0
- type: command
  start: [/usr/bin/python3, -m, chaos.services.postfix, start, postfix, --lab, /r]
  stop: [/usr/bin/python3, -m, chaos.services.postfix, stop, postfix, --lab, /r]
- type: command
  start: [/usr/bin/python3, -m, chaos.services.postfix, start, dovecot, --lab, /r]
  stop: [/usr/bin/python3, -m, chaos.services.postfix, stop, dovecot, --lab, /r]
"""

# mail1 was active; its daemon and Postfix were killed at 00:00:10.000 (the fault).
# What mail2's daemon logged (failoverd.log), as written in the lab:
STANDBY_LOG = """\
{"act": "wait", "reason": "mail1 holds the lease", "role": "standby", "event": "decided", "timestamp": "2026-12-07T00:00:05.000000Z", "node": "mail2"}
{"act": "contend", "reason": "the lease is free: contending", "role": "standby", "event": "decided", "timestamp": "2026-12-07T00:00:12.400000Z", "node": "mail2"}
{"previous": "standby", "role": "fencing", "reason": "the lease is free: contending", "event": "role_changed", "timestamp": "2026-12-07T00:00:12.410000Z", "node": "mail2"}
{"targets": ["mail1"], "reason": "mail1 was active (epoch 1)", "epoch": 2, "event": "fence_planned", "timestamp": "2026-12-07T00:00:12.420000Z", "node": "mail2"}
not a JSON line: a traceback, say
{"method": "ssh", "target": "mail1", "ok": true, "reason": "remote fence-self exited 0; ports 25,143 closed", "took_ms": 900, "epoch": 2, "event": "fence_method_finished", "timestamp": "2026-12-07T00:00:13.330000Z", "node": "mail2"}
{"previous": "fencing", "role": "promoting", "reason": "fenced", "event": "role_changed", "timestamp": "2026-12-07T00:00:13.340000Z", "node": "mail2"}
{"resource": "ocf heartbeat:Filesystem resources[0]", "epoch": 2, "event": "resource_starting", "timestamp": "2026-12-07T00:00:13.350000Z", "node": "mail2"}
{"resource": "ocf heartbeat:Filesystem resources[0]", "took_ms": 64, "event": "resource_started", "timestamp": "2026-12-07T00:00:13.414000Z", "node": "mail2"}
{"resource": "vip 198.51.100.25/24 on eth0", "took_ms": 5, "event": "resource_started", "timestamp": "2026-12-07T00:00:13.420000Z", "node": "mail2"}
{"resource": "command resources[2]", "took_ms": 700, "event": "resource_started", "timestamp": "2026-12-07T00:00:14.120000Z", "node": "mail2"}
{"resource": "command resources[3]", "took_ms": 115, "event": "resource_started", "timestamp": "2026-12-07T00:00:14.235000Z", "node": "mail2"}
{"previous": "promoting", "role": "active", "reason": "promoted with epoch 2", "event": "role_changed", "timestamp": "2026-12-07T00:00:14.240000Z", "node": "mail2"}
"""
# What fence-self on mail1 wrote (its stderr, kept as mail1/fence-self.log):
FENCE_SELF_LOG = """\
{"epoch": 1, "by": "198.51.100.12", "event": "fence_self_started", "level": "info", "timestamp": "2026-12-07T00:00:12.730000Z", "node": "mail1", "cluster": "lab"}
{"resource": "command resources[3]", "took_ms": 60, "event": "resource_stopped", "level": "info", "timestamp": "2026-12-07T00:00:12.790000Z", "node": "mail1", "cluster": "lab"}
{"resource": "command resources[2]", "took_ms": 150, "event": "resource_stopped", "level": "info", "timestamp": "2026-12-07T00:00:12.940000Z", "node": "mail1", "cluster": "lab"}
{"resource": "vip 198.51.100.25/24 on eth0", "took_ms": 8, "event": "resource_stopped", "level": "info", "timestamp": "2026-12-07T00:00:12.950000Z", "node": "mail1", "cluster": "lab"}
{"resource": "ocf heartbeat:Filesystem resources[0]", "took_ms": 120, "event": "resource_stopped", "level": "info", "timestamp": "2026-12-07T00:00:13.070000Z", "node": "mail1", "cluster": "lab"}
{"epoch": 1, "ok": true, "problems": [], "event": "fence_self_finished", "level": "info", "timestamp": "2026-12-07T00:00:13.080000Z", "node": "mail1", "cluster": "lab"}
"""


def at(clock: str) -> float:
    return datetime.fromisoformat(f"2026-12-07T{clock}Z").timestamp()


FAULT = at("00:00:10.000000")


@pytest.fixture
def labels(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "mail2").mkdir()
    (tmp_path / "mail2" / "failoverd.yaml").write_text(NODE_YAML)
    return phases.node_labels(tmp_path, ["mail1", "mail2"])


def test_resources_are_labelled_by_what_they_are(labels: dict[str, str]) -> None:
    assert labels == {
        "ocf heartbeat:Filesystem resources[0]": "mount",
        "vip 198.51.100.25/24 on eth0": "VIP",
        "command resources[2]": "Postfix",
        "command resources[3]": "Dovecot",
    }


def test_a_crash_takeover_is_split_into_detection_fencing_and_each_start(
    labels: dict[str, str],
) -> None:
    events = phases.parse_log(STANDBY_LOG.splitlines(), "mail2")
    fence_self = phases.parse_log(FENCE_SELF_LOG.splitlines(), "mail1")
    served = at("00:00:14.200000")
    steps = phases.takeover_steps(
        events, FAULT, FAULT + 30, fence_self=fence_self, labels=labels, served_at=served
    )
    assert steps == {
        "detect": 2.4,
        "contend": 0.01,
        "fence: ssh": 0.9,
        "fence: ssh connect": 0.3,  # 12.430 (13.330 - 0.900) -> fence-self started 12.730
        "fence: stop Dovecot": 0.06,
        "fence: stop Postfix": 0.15,
        "fence: stop VIP": 0.008,
        "fence: stop mount": 0.12,
        "fence: ssh verify": 0.25,  # fence-self finished 13.080 -> method ended 13.330
        "fence total": 0.93,
        "start: mount": 0.064,
        "start: VIP": 0.005,
        "start: Postfix": 0.7,
        "start: Dovecot": 0.115,
        "start total": 0.9,
        "served (client)": 4.2,
    }
    assert list(steps)[:3] == ["detect", "contend", "fence: ssh"]


def test_a_takeover_outside_the_window_is_not_counted() -> None:
    events = phases.parse_log(STANDBY_LOG.splitlines(), "mail2")
    assert phases.takeover_steps(events, FAULT, at("00:00:14.000000")) is None


def test_a_failed_method_and_the_one_that_fenced_are_both_shown() -> None:
    lines = [
        '{"act": "contend", "event": "decided", "timestamp": "2026-12-07T00:00:12.000000Z"}',
        '{"role": "fencing", "event": "role_changed", "timestamp": "2026-12-07T00:00:12.010000Z"}',
        '{"method": "ssh", "target": "mail1", "ok": false, "took_ms": 502, '
        '"event": "fence_method_finished", "timestamp": "2026-12-07T00:00:12.520000Z"}',
        '{"method": "command", "target": "mail1", "ok": true, "took_ms": 115, '
        '"event": "fence_method_finished", "timestamp": "2026-12-07T00:00:12.640000Z"}',
        '{"role": "promoting", "event": "role_changed", "timestamp": "2026-12-07T00:00:12.650000Z"}',
        '{"role": "active", "event": "role_changed", "timestamp": "2026-12-07T00:00:13.000000Z"}',
    ]
    steps = phases.takeover_steps(phases.parse_log(lines, "mail2"), FAULT, FAULT + 30)
    assert steps is not None
    assert steps["fence: ssh (failed)"] == 0.502
    assert steps["fence: command"] == 0.115
    assert "fence: ssh connect" not in steps  # no fence-self ran


def test_a_switchover_whose_old_active_logs_standby_late_ends_its_demotion_at_the_last_stop() -> (
    None
):
    old = [
        '{"act": "demote", "event": "decided", "timestamp": "2026-12-07T00:00:10.400000Z"}',
        '{"resource": "command resources[3]", "took_ms": 1234, "event": "resource_stopped", "timestamp": "2026-12-07T00:00:11.650000Z"}',
        '{"resource": "ocf heartbeat:Filesystem resources[0]", "took_ms": 232, "event": "resource_stopped", "timestamp": "2026-12-07T00:00:12.060000Z"}',
        '{"role": "standby", "event": "role_changed", "timestamp": "2026-12-07T00:00:12.110000Z"}',
    ]
    new = [
        '{"act": "contend", "event": "decided", "timestamp": "2026-12-07T00:00:12.077000Z"}',
        '{"role": "fencing", "event": "role_changed", "timestamp": "2026-12-07T00:00:12.079000Z"}',
        '{"role": "promoting", "event": "role_changed", "timestamp": "2026-12-07T00:00:12.095000Z"}',
        '{"role": "active", "event": "role_changed", "timestamp": "2026-12-07T00:00:14.233000Z"}',
    ]
    events = sorted(
        phases.parse_log(old, "mail1") + phases.parse_log(new, "mail2"), key=lambda e: e[0]
    )
    steps = phases.takeover_steps(events, FAULT, FAULT + 20, old_active="mail1", planned=True)
    assert steps is not None
    assert steps["request seen"] == 0.4
    assert steps["demote"] == 1.66  # 10.400 -> the last stop at 12.060
    assert steps["detect"] == 0.017  # not 2.077, from the command


def test_a_switchover_shows_the_old_actives_demotion_and_detection_after_its_release() -> None:
    old = [
        '{"act": "demote", "event": "decided", "timestamp": "2026-12-07T00:00:10.100000Z"}',
        '{"resource": "command resources[2]", "took_ms": 300, "event": "resource_stopped", '
        '"timestamp": "2026-12-07T00:00:10.500000Z"}',
        '{"role": "standby", "event": "role_changed", "timestamp": "2026-12-07T00:00:10.700000Z"}',
    ]
    new = [
        '{"act": "contend", "event": "decided", "timestamp": "2026-12-07T00:00:10.750000Z"}',
        '{"role": "fencing", "event": "role_changed", "timestamp": "2026-12-07T00:00:10.760000Z"}',
        '{"role": "promoting", "event": "role_changed", "timestamp": "2026-12-07T00:00:10.780000Z"}',
        '{"role": "active", "event": "role_changed", "timestamp": "2026-12-07T00:00:11.500000Z"}',
    ]
    events = sorted(
        phases.parse_log(old, "mail1") + phases.parse_log(new, "mail2"), key=lambda e: e[0]
    )
    steps = phases.takeover_steps(
        events,
        FAULT,
        FAULT + 20,
        labels={"command resources[2]": "Postfix"},
        old_active="mail1",
        planned=True,
    )
    assert steps == {
        "request seen": 0.1,
        "demote: stop Postfix": 0.3,
        "demote": 0.6,
        "detect": 0.05,
        "contend": 0.01,
        "fence total": 0.02,
        "start total": 0.72,
    }


def test_served_is_the_first_acknowledgement_after_the_new_active_came_up() -> None:
    service = [(10.0, "mail1", "service_down"), (11.0, "mail2", "service_up")]
    acks = [(9.0, 9.1), (10.9, 11.2), (11.05, 11.3), (11.1, 11.25)]
    assert phases.first_served(service, acks, "mail2", 9.5, 30.0) == 11.3
    assert phases.first_served(service, acks, "mail1", 9.5, 30.0) is None


def test_the_phase_table_gives_median_p95_and_n_per_step() -> None:
    cases = [
        {
            "title": "crash",
            "system": "failoverd",
            "reps": [
                {"steps": {"detect": 2.0, "fence: ssh": 0.5}},
                {"steps": {"detect": 2.2, "fence: ssh (failed)": 0.5, "fence: command": 0.1}},
                {"steps": None},
            ],
        }
    ]
    rows = phases.phase_rows(cases)
    assert [(r["step"], r["n"], r["median"]) for r in rows] == [
        ("detect", 2, 2.1),
        ("fence: ssh", 1, 0.5),
        ("fence: ssh (failed)", 1, 0.5),
        ("fence: command", 1, 0.1),
    ]
    table = phases.phase_table(rows)
    assert "| crash | detect | 2 | 2.100 | 2.200 | 2.200 |" in table
    assert "|  | fence: ssh | 1 | 0.500 | 0.500 | 0.500 |" in table


def test_postfix_switchover_target_is_judged_from_the_command_to_postfix_answering() -> None:
    reps = [{"outage": 0.3, "steps": {"served (client)": s}} for s in (0.9, 1.2, 1.4)]
    cases = [
        {"key": "switchover", "system": "failoverd", "title": "switchover", "reps": reps},
        {
            "key": "ka-switchover",
            "system": "keepalived",
            "title": "ka",
            "reps": [{"outage": 0.6, "steps": {"served (client)": 0.8}}],
        },
    ]
    for c in cases:
        c.update(overlaps=0, overlap_s=0.0, lost=0)
    rows = report.case_rows(cases, 2.0)
    assert rows[0]["vs_keepalived"]["case"] == "ka-switchover"
    postfix = report.targets(rows, None, None, 2.0, "postfix")
    [t] = [t for t in postfix if t["target"].startswith("switchover")]
    assert "Postfix answers: median ≤ 1 s" in t["target"] and t["met"] is False  # 1.2 s
    toy = report.targets(rows, None, None, 2.0)
    [t] = [t for t in toy if t["target"].startswith("switchover")]
    assert t["met"] is True  # the toy's target: the client's gap, 0.3 <= 0.5 s
