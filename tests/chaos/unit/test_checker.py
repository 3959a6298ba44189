"""The chaos checker judges synthetic histories: each rule fails exactly what it should."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.judge.checker import check, service_intervals, settled_at
from chaos.judge.history import (
    Delivery,
    Expectation,
    History,
    LabEvent,
    LogRecord,
    ServiceEvent,
    StoreWrite,
    VipEvent,
    load_history,
)
from chaos.records import CorruptHistory, read_records


class Builder:
    """A tiny history DSL: a clean failover from mail1 (epoch 1) to mail2 (epoch 2) by default."""

    def __init__(self) -> None:
        self.h = History(nodes=("mail1", "mail2"))

    def up(self, node: str, t: float, epoch: int) -> Builder:
        self.h.service.append(ServiceEvent(node, "service_up", t, epoch))
        return self

    def down(self, node: str, t: float, epoch: int | None = None) -> Builder:
        self.h.service.append(ServiceEvent(node, "service_down", t, epoch))
        return self

    def lab(self, event: str, t: float, **kw: str) -> Builder:
        self.h.lab.append(LabEvent(event, t, kw.get("node"), kw.get("fault")))
        return self

    def fault(self, start: float, heal: float | None, name: str = "kill") -> Builder:
        self.lab("fault_start", start, fault=name)
        if heal is not None:
            self.lab("fault_heal", heal)
        return self

    def deliver(self, n: int, t: float, node: str | None, epoch: int = 1, ack: bool = True):
        """A delivery at t; when `node` is given it was written by that node first."""
        if node is not None:
            self.h.writes.append(StoreWrite(n, node, epoch, t))
        code = 250 if ack else None
        self.h.deliveries.append(
            Delivery(n, t - 0.01, t + 0.01, code, None if ack else "timeout", node)
        )
        return self

    def traffic(self, start: float, end: float, node: str | None, epoch: int, first_n: int) -> int:
        n, t = first_n, start
        while t < end:
            self.deliver(n, t, node, epoch, ack=node is not None)
            n, t = n + 1, t + 0.5
        return n

    def end(self, t: float) -> History:
        self.h.end = t
        return self.h


def clean_failover() -> History:
    b = Builder().up("mail1", 0.0, 1)
    n = b.traffic(1.0, 10.0, "mail1", 1, 0)
    b.fault(10.0, 20.0).down("mail1", 11.0, 1)
    n = b.traffic(11.0, 13.0, None, 1, n)
    b.up("mail2", 13.0, 2)
    b.traffic(13.5, 30.0, "mail2", 2, n)
    return b.end(30.0)


REQUIRED = Expectation(failover="required", settle=10.0, max_takeovers=1)


def rules(verdict) -> set[str]:
    return {v.rule for v in verdict.violations}


# -- clean histories pass ------------------------------------------------------------------


def test_clean_failover_passes_and_reports_the_outage() -> None:
    verdict = check(clean_failover(), REQUIRED)
    assert verdict.passed, verdict.violations
    assert (verdict.takeovers, verdict.failovers) == (1, 1)
    [o] = verdict.outages
    # First failure at 10.99 (the message sent at 11.0), first success after at 13.51.
    assert o["outage"] == pytest.approx(13.51 - 10.99, abs=1e-3)
    assert o["gap"] == pytest.approx(13.51 - 9.51, abs=1e-3)
    assert o["failed"] == 4


def test_no_fault_and_steady_service_passes_a_forbidden_scenario() -> None:
    b = Builder().up("mail1", 0.0, 1)
    b.traffic(1.0, 10.0, "mail1", 1, 0)
    b.fault(3.0, 6.0, "peer-link")
    verdict = check(b.end(10.0), Expectation(failover="forbidden", settle=5.0))
    assert verdict.passed, verdict.violations
    assert verdict.outages[0]["outage"] == 0.0


def test_switchover_handover_touching_intervals_is_not_an_overlap() -> None:
    b = Builder().up("mail1", 0.0, 1).down("mail1", 5.0, 1).up("mail2", 5.0, 2)
    b.fault(4.0, 4.5, "switchover")
    assert check(b.end(20.0), REQUIRED).passed


# -- rule 1: overlap -----------------------------------------------------------------------


def test_overlapping_service_intervals_fail() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0).up("mail2", 8.0, 2).down("mail1", 9.0, 1)
    verdict = check(b.end(20.0), Expectation())
    assert "overlap" in rules(verdict)
    assert "from 8.000 to 9.000" in verdict.violations[0].message


def test_a_store_write_proves_serving_even_without_service_events() -> None:
    b = Builder().up("mail2", 0.0, 2).fault(1.0, 2.0)
    b.deliver(7, 5.0, "mail1", epoch=1)  # mail1 never said it was up, but it wrote
    verdict = check(b.end(10.0), Expectation())
    assert "overlap" in rules(verdict)
    assert any(i.proof == "write" and i.node == "mail1" for i in verdict.intervals)


def test_a_service_never_stopped_is_open_until_the_end_of_observation() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0).up("mail2", 15.0, 2)
    assert "overlap" in rules(check(b.end(20.0), Expectation()))


def test_power_off_closes_an_interval_whose_down_event_was_never_written() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 12.0, "power-off")
    b.lab("power_off", 6.0, node="mail1").up("mail2", 9.0, 2)
    verdict = check(b.end(30.0), REQUIRED)
    assert verdict.passed, verdict.violations
    assert [(i.node, i.end) for i in verdict.intervals][0] == ("mail1", 6.0)


def test_power_off_after_the_new_active_started_is_an_overlap() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 12.0)
    b.up("mail2", 7.0, 2).lab("power_off", 8.0, node="mail1")
    assert "overlap" in rules(check(b.end(30.0), Expectation()))


def test_a_second_up_without_down_keeps_the_earlier_start() -> None:
    b = Builder().up("mail1", 0.0, 1).up("mail1", 5.0, 1).down("mail1", 6.0)
    [i] = service_intervals(b.end(10.0))
    assert (i.start, i.end) == (0.0, 6.0)


# -- rule 2: lost mail --------------------------------------------------------------------


def test_acknowledged_message_missing_from_the_store_fails() -> None:
    h = clean_failover()
    h.writes = [w for w in h.writes if w.msg != 3]
    verdict = check(h, REQUIRED)
    assert rules(verdict) == {"lost"}
    assert "[3]" in verdict.violations[0].message


def test_a_rejected_write_does_not_count_as_stored() -> None:
    h = clean_failover()
    h.writes = [StoreWrite(w.msg, w.node, w.epoch, w.t, w.msg != 3) for w in h.writes]
    assert "lost" in rules(check(h, REQUIRED))


def test_unacknowledged_message_in_the_store_is_fine() -> None:
    h = clean_failover()
    h.writes.append(StoreWrite(999, "mail2", 2, 20.0))
    assert check(h, REQUIRED).passed


# -- rule 3: epochs -----------------------------------------------------------------------


def test_a_write_with_an_epoch_below_one_already_seen_fails() -> None:
    h = clean_failover()
    h.writes.append(StoreWrite(500, "mail2", 1, 25.0))
    verdict = check(h, REQUIRED)
    # ... and epoch 1, mail1's, is now also used by mail2.
    assert rules(verdict) == {"stale_epoch", "epoch"}


def test_a_write_without_an_epoch_fails() -> None:
    h = clean_failover()
    h.writes.append(StoreWrite(500, "mail2", None, 25.0))
    assert "stale_epoch" in rules(check(h, REQUIRED))


def test_a_stale_write_the_fenced_store_rejected_is_not_a_violation() -> None:
    h = clean_failover()
    h.writes.append(StoreWrite(500, "mail2", 1, 25.0, accepted=False))
    assert check(h, REQUIRED).passed


# -- rule 4: one active after the heal --------------------------------------------------------


def test_no_active_after_the_heal_fails() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0).down("mail1", 5.5, 1)
    verdict = check(b.end(30.0), Expectation(settle=10.0))
    assert "not_settled" in rules(verdict)
    assert verdict.outages[0]["settled_after_heal"] is None


def test_an_active_later_than_the_bound_fails() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0).down("mail1", 5.5, 1).up("mail2", 20.0, 2)
    verdict = check(b.end(40.0), Expectation(settle=10.0))
    assert "not_settled" in rules(verdict)
    assert verdict.outages[0]["settled_after_heal"] == pytest.approx(14.0)


def test_flapping_until_the_end_is_not_settled() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0)
    for k in range(10):  # mail1 and mail2 alternate with gaps until the end
        node = ("mail1", "mail2")[k % 2]
        b.down(node, 7.0 + 2 * k).up(("mail2", "mail1")[k % 2], 7.5 + 2 * k, k + 2)
    verdict = check(b.end(27.0), Expectation(settle=5.0))
    assert "not_settled" in rules(verdict)


def test_each_repetition_of_a_fault_is_judged_on_its_own() -> None:
    b = Builder().up("mail1", 0.0, 1)
    b.fault(5.0, 6.0, "restart").down("mail1", 5.2).up("mail2", 7.0, 2)
    b.fault(10.0, 11.0, "restart").down("mail2", 10.2)  # nobody after the second heal
    verdict = check(b.end(30.0), Expectation(settle=5.0))
    assert [o["settled_after_heal"] for o in verdict.outages] == [1.0, None]
    assert rules(verdict) == {"not_settled"}


def test_settled_at_finds_the_start_of_the_final_single_active_stretch() -> None:
    h = Builder().up("mail1", 0.0, 1).down("mail1", 4.0).up("mail2", 6.0, 2).end(10.0)
    assert settled_at(service_intervals(h), 2.0, 10.0) == 6.0


# -- rule 5: failovers the scenario does not allow -----------------------------------------


def test_a_failover_where_none_was_warranted_fails() -> None:
    verdict = check(clean_failover(), Expectation(failover="forbidden", settle=20.0))
    assert rules(verdict) == {"unwarranted_failover"}


def test_a_restart_on_the_same_node_also_counts_as_an_unwarranted_takeover() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0).down("mail1", 7.0).up("mail1", 8.0, 2)
    verdict = check(b.end(20.0), Expectation(failover="forbidden"))
    assert (verdict.takeovers, verdict.failovers) == (1, 0)
    assert rules(verdict) == {"unwarranted_failover"}


def test_forbidden_during_fault_allows_a_takeover_after_the_heal_only() -> None:
    h = clean_failover()  # takeover at 13, heal at 20
    during = Expectation(failover="forbidden-during-fault", settle=20.0)
    assert rules(check(h, during)) == {"unwarranted_failover"}
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 10.0, "no-fencing")
    b.down("mail1", 11.0).up("mail2", 12.0, 2)
    assert check(b.end(30.0), during).passed


def test_a_required_failover_that_did_not_happen_fails() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0)
    assert rules(check(b.end(20.0), REQUIRED)) == {"no_failover"}


def test_more_takeovers_than_the_bound_fail() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 20.0, "lossy")
    for k in range(4):
        a, z = ("mail1", "mail2")[k % 2], ("mail2", "mail1")[k % 2]
        b.down(a, 6.0 + 3 * k).up(z, 7.0 + 3 * k, k + 2)
    verdict = check(b.end(40.0), Expectation(max_takeovers=3, settle=20.0))
    assert rules(verdict) == {"too_many_takeovers"}
    assert (verdict.takeovers, verdict.failovers) == (4, 4)


def test_missing_alert_fails_when_required_and_a_fence_alert_satisfies_it() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 10.0, "no-fencing")
    h = b.end(20.0)
    expect = Expectation(failover="forbidden", require_alert=True)
    assert rules(check(h, expect)) == {"no_alert"}
    h.logs.append(LogRecord("mail2", "fence_failed", "critical", t=7.0))
    assert check(h, expect).passed


def test_the_alert_must_be_the_named_event_inside_the_fault_window() -> None:
    expect = Expectation(failover="forbidden", require_alert=True)
    for record in (
        LogRecord("mail2", "fence_failed", "critical", t=4.0),  # before the fault
        LogRecord("mail2", "fence_failed", "critical", t=11.0),  # after the heal
        LogRecord("mail2", "fence_failed", "critical"),  # no readable time
        LogRecord("mail2", "fence_readiness_lost", "critical", t=7.0),  # another event
    ):
        h = Builder().up("mail1", 0.0, 1).fault(5.0, 10.0, "no-fencing").end(20.0)
        h.logs.append(record)
        assert rules(check(h, expect)) == {"no_alert"}, record


def test_an_outage_above_the_scenario_bound_fails() -> None:
    expect = Expectation(failover="required", settle=10.0, max_outage=1.0)
    assert rules(check(clean_failover(), expect)) == {"outage"}


def test_unknown_failover_mode_is_rejected() -> None:
    with pytest.raises(ValueError):
        Expectation(failover="sometimes")


# -- the loader --------------------------------------------------------------------------


def test_load_history_reads_a_run_folder_and_skips_a_torn_last_line(tmp_path: Path) -> None:
    def lines(path: Path, *recs: dict, torn: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r) + "\n" for r in recs)
        path.write_text(text + ('{"event": "serv' if torn else ""))

    lines(tmp_path / "events/mail1-service.jsonl", {"event": "service_up", "t": 1.0, "epoch": 1})
    lines(
        tmp_path / "events/lab.jsonl",
        {"event": "fault_start", "t": 2.0, "fault": "kill"},
        {"event": "power_off", "t": 2.5, "node": "mail1"},
        {"event": "fault_heal", "t": 3.0},
        {"event": "observation_end", "t": 9.0},
        torn=True,
    )
    lines(tmp_path / "store/messages.jsonl", {"msg": 0, "node": "mail1", "epoch": 1, "t": 1.5})
    lines(
        tmp_path / "client.jsonl",
        {"n": 0, "t_start": 1.4, "t_end": 1.6, "code": 250, "error": None},
    )
    lines(tmp_path / "mail2/failoverd.log", {"event": "fence_failed", "level": "critical"})
    h = load_history(tmp_path)
    assert h.end == 9.0
    assert [f.name for f in h.faults()] == ["kill"]
    assert [(i.node, i.start, i.end) for i in service_intervals(h)] == [("mail1", 1.0, 2.5)]
    assert h.logs == [LogRecord("mail2", "fence_failed", "critical")]
    assert h.deliveries[0].ok


def test_load_history_reports_a_corrupt_line_in_the_middle_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "store/messages.jsonl"
    path.parent.mkdir(parents=True)
    good = json.dumps({"msg": 0, "node": "mail1", "epoch": 1, "t": 1.5})
    path.write_text(f'{good}\n{{"msg": 1, "no\n{good}\n')
    with pytest.raises(CorruptHistory, match="messages.jsonl: line 2"):
        read_records(path)
    h = load_history(tmp_path)
    assert len(h.writes) == 2
    assert len(h.corrupt) == 1 and "line 2" in h.corrupt[0]
    assert "corrupt_history" in rules(check(h, Expectation()))


def test_load_history_orders_records_by_the_monotonic_clock(tmp_path: Path) -> None:
    """The wall clock stepped back 100 s mid-run: the monotonic twins keep the order."""
    (tmp_path / "events").mkdir()
    recs = [
        {"event": "service_up", "t": 1000.0, "mono": 10.0, "epoch": 1},
        {"event": "service_down", "t": 905.0, "mono": 15.0, "epoch": 1},  # after the step
    ]
    (tmp_path / "events/mail1-service.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in recs)
    )
    h = load_history(tmp_path)
    [i] = service_intervals(h)
    assert i.end - i.start == pytest.approx(5.0)


# -- rule 6: the VIP ------------------------------------------------------------------


def vip(b: Builder, node: str, held: float, last: float, released: float) -> Builder:
    b.h.vip.append(VipEvent(node, "vip_held", held))
    b.h.vip.append(VipEvent(node, "vip_released", released, last_held=last))
    return b


def test_two_nodes_seen_holding_the_vip_at_once_fail() -> None:
    b = Builder()
    b.h = h = clean_failover()
    vip(b, "mail1", 0.1, 13.2, 13.3)  # mail1 still held it when mail2 had it
    vip(b, "mail2", 12.9, 29.9, 30.0)
    verdict = check(h, REQUIRED)
    assert rules(verdict) == {"vip_overlap"}
    assert "from 12.900 to 13.200" in verdict.violations[0].message


def test_a_clean_vip_handover_passes() -> None:
    b = Builder()
    b.h = clean_failover()
    vip(b, "mail1", 0.1, 10.9, 11.0)
    vip(b, "mail2", 12.9, 29.9, 30.0)
    assert check(b.h, REQUIRED).passed


def test_a_vip_start_logged_by_a_daemon_inside_the_other_nodes_holding_fails() -> None:
    b = Builder()
    b.h = clean_failover()
    vip(b, "mail1", 0.1, 10.9, 11.0)
    b.h.vip.append(VipEvent("mail2", "vip_held", 20.0))  # never released: up to the end
    b.h.logs.append(LogRecord("mail1", "resource_started", "info", t=25.0, resource="vip x"))
    assert rules(check(b.h, REQUIRED)) == {"vip_overlap"}


# -- rule 7: epochs belong to one node and rise ---------------------------------------------


def test_an_epoch_promoted_on_two_nodes_fails() -> None:
    h = clean_failover()
    h.logs.append(LogRecord("mail1", "promoted", "info", t=0.0, epoch=1))
    h.logs.append(LogRecord("mail2", "promoted", "info", t=13.0, epoch=1))
    verdict = check(h, REQUIRED)
    assert "epoch" in rules(verdict)
    assert any("epoch 1 used by mail1 and mail2" in x.message for x in verdict.violations)


def test_a_takeover_whose_epoch_does_not_rise_fails() -> None:
    b = Builder().up("mail1", 0.0, 5).fault(10.0, 20.0).down("mail1", 11.0, 5)
    b.up("mail2", 13.0, 4)
    verdict = check(b.end(30.0), Expectation(settle=10.0))
    assert rules(verdict) == {"epoch"}
    assert "with epoch 4, not above epoch 5" in verdict.violations[0].message


def test_a_service_started_without_an_epoch_fails() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(10.0, 20.0).down("mail1", 11.0, 1)
    b.h.service.append(ServiceEvent("mail2", "service_up", 13.0, None))
    assert "epoch" in rules(check(b.end(30.0), Expectation(settle=10.0)))


# -- rule 8: the client recovers, in every scenario ------------------------------------------


def test_a_client_never_served_after_the_heal_fails_even_without_an_outage_bound() -> None:
    b = Builder().up("mail1", 0.0, 1)
    n = b.traffic(1.0, 5.0, "mail1", 1, 0)
    b.fault(5.0, 6.0, "peer-link")
    b.traffic(5.0, 20.0, None, 1, n)  # mail1 "serves" (its interval) but nothing gets through
    verdict = check(b.end(20.0), Expectation(failover="forbidden", settle=5.0))
    assert rules(verdict) == {"no_recovery"}


def test_trailing_failures_after_the_last_success_fail() -> None:
    b = Builder().up("mail1", 0.0, 1)
    n = b.traffic(1.0, 12.0, "mail1", 1, 0)
    b.fault(3.0, 4.0, "peer-link")
    b.traffic(12.0, 14.0, None, 1, n)
    verdict = check(b.end(14.0), Expectation(failover="forbidden", settle=5.0))
    assert rules(verdict) == {"no_recovery"}
    assert "4 deliveries failed from 11.990" in verdict.violations[0].message


# -- nobody serves while the scenario says so; overlapping faults ---------------------------


def test_serving_while_quorum_is_lost_fails_after_the_grace() -> None:
    quiet = Expectation(failover="allowed", settle=10.0, quiet_after=3.0)
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 15.0, "quorum lost").down("mail1", 7.0, 1)
    b.up("mail1", 16.0, 2)
    assert check(b.end(30.0), quiet).passed
    late = Builder().up("mail1", 0.0, 1).fault(5.0, 15.0, "quorum lost").down("mail1", 9.0, 1)
    late.up("mail1", 16.0, 2)
    assert rules(check(late.end(30.0), quiet)) == {"served_during_fault"}


def test_overlapping_faults_heal_by_name() -> None:
    b = Builder().fault(1.0, None, "a")
    b.lab("fault_start", 2.0, fault="b").lab("fault_heal", 3.0, fault="a")
    b.lab("fault_heal", 4.0, fault="b")
    assert [(f.name, f.start, f.heal) for f in b.end(10.0).faults()] == [
        ("a", 1.0, 3.0),
        ("b", 2.0, 4.0),
    ]


# -- the store full (scenario 31): temporary failures only, nothing acked unstored ---------

STORE_FULL = Expectation(failover="forbidden", settle=10.0, tempfail_during_fault=True)


def store_full(reply: int | None, error: str | None = None, ack_unstored: bool = False):
    """mail1 serves throughout; the store is full from 5 to 10: deliveries fail with `reply`
    (or, with ack_unstored, are answered 250 without a store write)."""
    b = Builder().up("mail1", 0.0, 1)
    n = b.traffic(1.0, 5.0, "mail1", 1, 0)
    b.fault(5.0, 10.0, "mail store full")
    t = 5.0
    while t < 10.0:
        if ack_unstored:
            b.deliver(n, t, None)  # acknowledged, never written
        else:
            b.h.deliveries.append(Delivery(n, t - 0.01, t + 0.01, reply, error, None))
        n, t = n + 1, t + 0.5
    b.traffic(10.5, 15.0, "mail1", 1, n)
    return b.end(15.0)


def test_a_store_full_answered_with_452_passes() -> None:
    verdict = check(store_full(452), STORE_FULL)
    assert verdict.passed, verdict.violations
    assert verdict.stats["failed"] == 10


def test_a_store_full_answered_with_250_without_storing_is_lost_mail() -> None:
    verdict = check(store_full(None, ack_unstored=True), STORE_FULL)
    assert "lost" in rules(verdict)
    # ... and the fault never produced a temporary failure either.
    assert "not_tempfail" in rules(verdict)


@pytest.mark.parametrize(("reply", "error"), [(552, "552 no space"), (None, "timeout")])
def test_a_store_full_answered_with_a_5xx_or_silence_fails(reply: int | None, error: str) -> None:
    verdict = check(store_full(reply, error), STORE_FULL)
    assert rules(verdict) == {"not_tempfail"}, verdict.violations
    assert check(store_full(reply, error), Expectation("forbidden", 10.0)).passed
