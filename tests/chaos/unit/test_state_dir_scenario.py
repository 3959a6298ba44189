"""Scenario 30's own check: the daemons must report the settled active, alone, unchanged."""

from __future__ import annotations

from chaos.faults.edge_scenarios import roles_problem

BEFORE = ("active", 1)


def test_the_same_active_with_the_same_epoch_throughout_holds() -> None:
    ok = {"mail1": ("standby", None), "mail2": ("active", 1)}
    assert roles_problem("mail2", BEFORE, {"during": ok, "after": ok}) == ""


def test_a_demoted_a_repromoted_or_a_second_active_is_reported() -> None:
    cases = {
        "demoted": {"mail1": ("standby", None), "mail2": ("standby", None)},
        "re-promoted": {"mail1": ("standby", None), "mail2": ("active", 2)},
        "failed over": {"mail1": ("active", 2), "mail2": ("standby", None)},
        "two actives": {"mail1": ("active", 2), "mail2": ("active", 1)},
        "no answer": {},
    }
    ok = {"mail1": ("standby", None), "mail2": ("active", 1)}
    for name, roles in cases.items():
        problem = roles_problem("mail2", BEFORE, {"during": ok, "after": roles})
        assert problem.startswith("after the read-only state dir"), name
