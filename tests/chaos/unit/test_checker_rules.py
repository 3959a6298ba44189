"""Each checker rule alone: a history that trips only that rule, and one that passes it.

The histories are built with the same small DSL as tests/chaos/unit/test_checker.py
(a clean failover from mail1 to mail2 by default). `tripped` runs every rule of the
checker, so "only this rule" is checked against all the others, and the rule itself
is then called alone on the passing history.
"""

from __future__ import annotations

from chaos.judge.checker import RULES, check
from chaos.judge.history import Expectation, History, LogRecord, ServiceEvent, StoreWrite
from chaos.judge.rules.alert import no_alert
from chaos.judge.rules.corrupt_history import corrupt_history
from chaos.judge.rules.epoch import epoch
from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.fault_window import fault_window
from chaos.judge.rules.lost import lost
from chaos.judge.rules.overlap import overlap
from chaos.judge.rules.protocol import Rule, RuleResult, compose
from chaos.judge.rules.quiet import served_during_fault
from chaos.judge.rules.recovery import no_recovery
from chaos.judge.rules.stale_epoch import stale_epoch
from chaos.judge.rules.takeovers import failover_mode, too_many_takeovers
from chaos.judge.rules.tempfail import not_tempfail
from chaos.judge.rules.vip_overlap import vip_overlap
from tests.chaos.unit.test_checker import REQUIRED, Builder, clean_failover, store_full, vip


def judge(rule: Rule, h: History, expect: Expectation, **kw: set[int]) -> RuleResult:
    return rule(Evidence.of(h, expect, **kw))


def tripped(h: History, expect: Expectation) -> dict[str, list[str]]:
    """The rules that failed, each with the kinds of the violations it found."""
    results = compose(RULES, Evidence.of(h, expect))
    return {r.name: [v.rule for v in r.violations] for r in results if not r.passed}


# -- the composition --------------------------------------------------------------------


def test_every_rule_has_its_own_name_and_passes_a_clean_failover() -> None:
    results = compose(RULES, Evidence.of(clean_failover(), REQUIRED))
    assert [r.name for r in results] == [rule.__name__ for rule in RULES]
    assert len({r.name for r in results}) == len(RULES)
    assert all(r.passed for r in results)


def test_the_verdict_is_the_rules_violations_in_rule_order() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0).up("mail2", 8.0, 2).down("mail1", 9.0, 1)
    h = b.end(20.0)
    h.corrupt.append("client.jsonl: line 2")
    expect = Expectation(failover="forbidden", settle=20.0)
    results = compose(RULES, Evidence.of(h, expect))
    verdict = check(h, expect)
    assert verdict.violations == [v for r in results for v in r.violations]
    assert [v.rule for v in verdict.violations] == [
        "overlap",
        "unwarranted_failover",
        "corrupt_history",
    ]
    assert not verdict.passed


def test_the_evidence_measures_the_fault_windows_and_takeovers_once() -> None:
    ev = Evidence.of(clean_failover(), REQUIRED)
    [w] = ev.windows
    assert (w.fault.name, w.healed, w.end) == ("kill", 20.0, 30.0)
    assert w.report()["settled_after_heal"] == 0.0  # mail2 alone since 13, before the heal
    assert [(i.node, i.start) for i in ev.takeovers] == [("mail2", 13.0)]
    assert ev.failovers == 1
    assert ev.in_force_until(w.fault) == 20.0


# -- one rule at a time ----------------------------------------------------------------


def test_overlap_alone() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0).up("mail2", 8.0, 2).down("mail1", 9.0, 1)
    assert tripped(b.end(20.0), Expectation()) == {"overlap": ["overlap"]}
    assert judge(overlap, clean_failover(), REQUIRED).passed


def test_lost_alone() -> None:
    h = clean_failover()
    h.writes = [w for w in h.writes if w.msg != 3]
    assert tripped(h, REQUIRED) == {"lost": ["lost"]}
    assert judge(lost, clean_failover(), REQUIRED).passed
    acked = {d.n for d in h.deliveries if d.ok}
    assert judge(lost, h, REQUIRED, delivered=acked).passed  # the mailboxes have it


def test_stale_epoch_alone() -> None:
    h = clean_failover()
    h.writes.append(StoreWrite(500, "mail2", None, 25.0))
    assert tripped(h, REQUIRED) == {"stale_epoch": ["stale_epoch"]}
    h.writes[-1] = StoreWrite(500, "mail2", 1, 25.0, accepted=False)  # the fence held
    assert judge(stale_epoch, h, REQUIRED).passed


def test_fault_window_alone_not_settled_and_outage() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0).down("mail1", 5.5, 1)
    assert tripped(b.end(30.0), Expectation(settle=10.0)) == {"fault_window": ["not_settled"]}
    slow = Expectation(failover="required", settle=10.0, max_outage=1.0)
    assert tripped(clean_failover(), slow) == {"fault_window": ["outage"]}
    assert judge(fault_window, clean_failover(), REQUIRED).passed


def test_failover_mode_alone() -> None:
    forbidden = Expectation(failover="forbidden", settle=20.0)
    assert tripped(clean_failover(), forbidden) == {"failover_mode": ["unwarranted_failover"]}
    stayed = Builder().up("mail1", 0.0, 1).fault(5.0, 6.0).end(20.0)
    assert tripped(stayed, REQUIRED) == {"failover_mode": ["no_failover"]}
    assert judge(failover_mode, clean_failover(), REQUIRED).passed
    # No fault, nothing to judge: a required failover is not missing.
    assert judge(failover_mode, Builder().up("mail1", 0.0, 1).end(20.0), REQUIRED).passed


def test_too_many_takeovers_alone() -> None:
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 20.0, "lossy")
    for k in range(4):
        a, z = ("mail1", "mail2")[k % 2], ("mail2", "mail1")[k % 2]
        b.down(a, 6.0 + 3 * k).up(z, 7.0 + 3 * k, k + 2)
    h = b.end(40.0)
    bound = Expectation(max_takeovers=3, settle=20.0)
    assert tripped(h, bound) == {"too_many_takeovers": ["too_many_takeovers"]}
    assert judge(too_many_takeovers, h, Expectation(max_takeovers=4, settle=20.0)).passed


def test_no_alert_alone() -> None:
    h = Builder().up("mail1", 0.0, 1).fault(5.0, 10.0, "no-fencing").end(20.0)
    expect = Expectation(failover="forbidden", require_alert=True)
    assert tripped(h, expect) == {"no_alert": ["no_alert"]}
    h.logs.append(LogRecord("mail2", "fence_failed", "critical", t=7.0))
    assert judge(no_alert, h, expect).passed


def test_served_during_fault_alone() -> None:
    quiet = Expectation(failover="allowed", settle=10.0, quiet_after=3.0)
    late = Builder().up("mail1", 0.0, 1).fault(5.0, 15.0, "quorum lost").down("mail1", 9.0, 1)
    late.up("mail1", 16.0, 2)
    assert tripped(late.end(30.0), quiet) == {"served_during_fault": ["served_during_fault"]}
    b = Builder().up("mail1", 0.0, 1).fault(5.0, 15.0, "quorum lost").down("mail1", 7.0, 1)
    b.up("mail1", 16.0, 2)
    assert judge(served_during_fault, b.end(30.0), quiet).passed


def test_not_tempfail_alone() -> None:
    full = Expectation(failover="forbidden", settle=10.0, tempfail_during_fault=True)
    bounced = store_full(552, "552 no space")
    assert tripped(bounced, full) == {"not_tempfail": ["not_tempfail", "not_tempfail"]}
    assert judge(not_tempfail, store_full(452), full).passed


def test_vip_overlap_alone() -> None:
    b = Builder()
    b.h = clean_failover()
    vip(b, "mail1", 0.1, 13.2, 13.3)
    vip(b, "mail2", 12.9, 29.9, 30.0)
    assert tripped(b.h, REQUIRED) == {"vip_overlap": ["vip_overlap"]}
    handover = Builder()
    handover.h = clean_failover()
    vip(handover, "mail1", 0.1, 10.9, 11.0)
    vip(handover, "mail2", 12.9, 29.9, 30.0)
    assert judge(vip_overlap, handover.h, REQUIRED).passed


def test_epoch_alone() -> None:
    b = Builder().up("mail1", 0.0, 5).fault(10.0, 20.0).down("mail1", 11.0, 5)
    b.up("mail2", 13.0, 4)
    assert tripped(b.end(30.0), Expectation(settle=10.0)) == {"epoch": ["epoch"]}
    nameless = Builder().up("mail1", 0.0, 1).fault(10.0, 20.0).down("mail1", 11.0, 1)
    nameless.h.service.append(ServiceEvent("mail2", "service_up", 13.0, None))
    assert tripped(nameless.end(30.0), Expectation(settle=10.0)) == {"epoch": ["epoch"]}
    assert judge(epoch, clean_failover(), REQUIRED).passed


def test_no_recovery_alone_never_served_after_the_heal() -> None:
    b = Builder().up("mail1", 0.0, 1)
    n = b.traffic(1.0, 5.0, "mail1", 1, 0)
    b.fault(5.0, 6.0, "peer-link")
    b.traffic(5.0, 20.0, None, 1, n)  # mail1 "serves", but nothing gets through
    h = b.end(20.0)
    expect = Expectation(failover="forbidden", settle=5.0)
    assert tripped(h, expect) == {"no_recovery": ["no_recovery"]}
    b.deliver(999, 19.9, "mail1")  # served again at last
    assert judge(no_recovery, h, expect).passed


def test_no_recovery_alone_trailing_failures() -> None:
    b = Builder().up("mail1", 0.0, 1)
    n = b.traffic(1.0, 12.0, "mail1", 1, 0)
    b.fault(3.0, 4.0, "peer-link")
    b.traffic(12.0, 14.0, None, 1, n)
    expect = Expectation(failover="forbidden", settle=5.0)
    assert tripped(b.end(14.0), expect) == {"no_recovery": ["no_recovery"]}
    fine = Builder().up("mail1", 0.0, 1).fault(3.0, 4.0, "peer-link")
    fine.traffic(1.0, 14.0, "mail1", 1, 0)
    assert judge(no_recovery, fine.end(14.0), expect).passed


def test_corrupt_history_alone() -> None:
    h = clean_failover()
    h.corrupt.append("store/messages.jsonl: line 2: not JSON")
    assert tripped(h, REQUIRED) == {"corrupt_history": ["corrupt_history"]}
    assert judge(corrupt_history, clean_failover(), REQUIRED).passed
