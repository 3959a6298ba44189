"""The order resources start and stop in: the plan (config/order.py), the runner
(resources/order.py) and stop_all built on it, with stand-in resources that record
when each operation ran."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from failoverd.config.order import Order, plan
from failoverd.resources.base import stop_all
from failoverd.resources.order import order_of, run

MAIL = ["store", "vip", "postfix", "dovecot"]
MAIL_AFTER: list[tuple[str, ...] | None] = [None, (), ("store", "vip"), ("store", "vip")]


def needs(order: Order) -> list[set[int]]:
    return [set(n) for n in order.needs]


# -- the plan ------------------------------------------------------------------------


def test_without_after_the_plan_is_the_list_order_one_at_a_time() -> None:
    order = plan(MAIL, [None] * 4)
    assert order.serial
    assert needs(order) == [set(), {0}, {1}, {2}]
    assert order.groups() == [[0], [1], [2], [3]]
    assert needs(order.backwards()) == [{1}, {2}, {3}, set()]


def test_a_resource_without_after_waits_for_the_one_listed_before_it() -> None:
    order = plan(["a", "b", "c"], [None, (), None])
    assert not order.serial
    assert needs(order) == [set(), set(), {1}]  # c follows b; b waits for nothing


def test_the_mail_node_starts_store_and_vip_together_then_both_services() -> None:
    order = plan(MAIL, MAIL_AFTER)
    assert order.groups() == [[0, 1], [2, 3]]
    # Stopping: both services first (together), then the store and the VIP.
    assert order.backwards().groups() == [[2, 3], [0, 1]]
    assert order.longest([3.0, 1.0, 2.0, 5.0]) == 8.0  # store then dovecot


def test_a_name_shared_by_two_resources_stands_for_both_and_self_is_left_out() -> None:
    order = plan(["x", "x", "y"], [(), ("x",), ("x",)])
    assert needs(order) == [set(), {0}, {0, 1}]


def test_cycles_are_found_also_through_the_list_order() -> None:
    assert plan(["a", "b"], [("b",), ("a",)]).cycle() == [0, 1, 0]
    assert plan(["a", "b"], [("b",), None]).cycle() == [0, 1, 0]  # b follows a
    assert plan(MAIL, MAIL_AFTER).cycle() is None


# -- the runner ----------------------------------------------------------------------


class Fake:
    """A resource whose start/stop sleeps and records when it ran."""

    def __init__(self, name: str, after: tuple[str, ...] | None, log: list[Any], took: float):
        self.name, self.after, self.log, self.took = name, after, log, took
        self.timeout = 5.0
        self.fail = ""

    def _op(self, what: str) -> None:
        began = time.monotonic()
        time.sleep(self.took)
        if self.fail == what:
            raise RuntimeError(f"{self.name} would not {what}")
        self.log.append((what, self.name, began, time.monotonic()))

    def start(self, env: Any) -> None:
        self._op("start")

    def stop(self, env: Any) -> None:
        self._op("stop")


def mail_node(took: float = 0.2) -> tuple[list[Fake], list[Any]]:
    log: list[Any] = []
    return [Fake(n, a, log, took) for n, a in zip(MAIL, MAIL_AFTER, strict=True)], log


def spans(log: list[Any], what: str) -> dict[str, tuple[float, float]]:
    return {name: (a, b) for w, name, a, b in log if w == what}


def test_independent_starts_overlap_and_a_dependent_one_waits_for_both() -> None:
    resources, log = mail_node()
    out = run(order_of(resources), lambda i: resources[i].start({}), keep_going=False)
    assert out.ok and sorted(out.done) == [0, 1, 2, 3]
    s = spans(log, "start")
    # The store and the VIP run at the same time ...
    assert s["vip"][0] < s["store"][1] and s["store"][0] < s["vip"][1]
    # ... Postfix and Dovecot only once both are up, and together.
    for service in ("postfix", "dovecot"):
        assert s[service][0] >= max(s["store"][1], s["vip"][1])
    assert s["dovecot"][0] < s["postfix"][1] and s["postfix"][0] < s["dovecot"][1]


def test_a_failed_start_starts_nothing_after_it_and_waits_for_what_runs() -> None:
    resources, log = mail_node()
    resources[0].fail = "start"  # the store
    out = run(order_of(resources), lambda i: resources[i].start({}), keep_going=False)
    assert list(out.failed) == [0] and "would not start" in str(out.failed[0])
    assert out.done == [1]  # the VIP was already starting: it is waited for
    assert sorted(out.never) == [2, 3]
    assert [name for w, name, *_ in log] == ["vip"]


def test_a_start_past_its_deadline_is_given_up_on_and_reported_hung() -> None:
    resources, _ = mail_node(took=0.0)
    release = threading.Event()
    resources[1].start = lambda env: release.wait(5)  # type: ignore[method-assign]
    began = time.monotonic()
    out = run(
        order_of(resources),
        lambda i: resources[i].start({}),
        keep_going=False,
        deadlines=[1.0, 0.3, 1.0, 1.0],
    )
    assert time.monotonic() - began < 1.0
    assert list(out.hung) == [1] and not out.hung[1].done() and sorted(out.never) == [2, 3]
    release.set()


def test_stop_all_stops_the_services_together_before_the_store_and_the_vip() -> None:
    resources, log = mail_node()
    assert stop_all(resources, {}) == []
    s = spans(log, "stop")
    assert s["dovecot"][0] < s["postfix"][1] and s["postfix"][0] < s["dovecot"][1]
    for below in ("store", "vip"):
        assert s[below][0] >= max(s["postfix"][1], s["dovecot"][1])
    assert s["vip"][0] < s["store"][1]  # and those two together


def test_stop_all_keeps_going_past_a_failed_stop_and_reports_it() -> None:
    resources, log = mail_node(took=0.01)
    resources[2].fail = "stop"  # postfix
    assert stop_all(resources, {}) == ["postfix: postfix would not stop"]
    assert sorted(name for _, name, *_ in log) == ["dovecot", "store", "vip"]


def test_stop_all_without_after_stops_the_last_first_one_at_a_time() -> None:
    log: list[Any] = []
    resources = [Fake(n, None, log, 0.01) for n in MAIL]
    assert stop_all(resources, {}) == []
    assert [name for _, name, *_ in log] == ["dovecot", "postfix", "vip", "store"]
    s = spans(log, "stop")
    assert all(s[a][1] <= s[b][0] for a, b in zip(MAIL[::-1], MAIL[-2::-1], strict=False))


@pytest.mark.parametrize("after", [("nothing-here",), ("postfix",)])
def test_a_set_that_cannot_be_planned_runs_in_the_list_order(after: tuple[str, ...]) -> None:
    """The record of an older file meeting the current one: an after: naming nothing
    in the set, or a cycle (store after postfix, postfix after store)."""
    log: list[Any] = []
    resources = [Fake(n, a, log, 0.01) for n, a in zip(MAIL, MAIL_AFTER, strict=True)]
    resources[0].after = after
    assert order_of(resources).serial
    assert stop_all(resources, {}) == []
    assert [name for _, name, *_ in log] == ["dovecot", "postfix", "vip", "store"]
