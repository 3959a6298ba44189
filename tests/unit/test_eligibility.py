"""Eligibility (a member's `eligible` and `why`), exhaustively, with plain values."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from failoverd.node.decision import Act, Role, decide
from failoverd.node.eligibility import ELIGIBLE, eligibility, wall_deadline
from tests.unit.test_decision import obs

FLAGS = ("connected", "dirty", "fenced", "maintenance", "healthy", "backing_off", "path_down")


def _case(role: Role, bits: tuple[bool, ...]):  # type: ignore[no-untyped-def]
    f = dict(zip(FLAGS, bits, strict=True))
    o = obs(
        role=role,
        connected=f["connected"],
        dirty=f["dirty"],
        fenced=f["fenced"],
        maintenance=f["maintenance"],
        healthy=f["healthy"],
        backoff_until=150.0 if f["backing_off"] else 0.0,
    )
    down = ("mail2",) if f["path_down"] else ()
    return f, o, eligibility(o, ("smtp",), "2026-11-28T10:00:00Z", down)


@pytest.mark.parametrize("role", list(Role))
def test_eligible_exactly_when_a_connected_clean_healthy_standby_is_free_to_contend(
    role: Role,
) -> None:
    for bits in itertools.product((False, True), repeat=len(FLAGS)):
        f, o, e = _case(role, bits)
        want = (
            role is Role.STANDBY
            and f["connected"]
            and not f["dirty"]
            and not f["fenced"]
            and not f["maintenance"]
            and f["healthy"]
            and not f["backing_off"]
            and not f["path_down"]
        )
        assert e.eligible is want, (role, f, e)
        # `why` is one sentence exactly when not eligible.
        assert (e.why == "") is want, (role, f, e)
        assert "\n" not in e.why
        if want:
            # Agrees with the decision logic: with the lease free, it contends.
            assert decide(o).act is Act.CONTEND


def test_every_standby_the_decision_logic_would_let_contend_is_eligible() -> None:
    for bits in itertools.product((False, True), repeat=len(FLAGS) - 1):
        f, o, e = _case(Role.STANDBY, (*bits, False))
        if decide(o).act is Act.CONTEND:
            assert e == ELIGIBLE, f


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"dirty": True}, "dirty"),
        ({"fenced": True}, "fence marker"),
        ({"maintenance": True}, "maintenance"),
        ({"healthy": False}, "health check failing: smtp"),
        ({"backoff_until": 150.0}, "backing off until 2026-11-28T10:00:00Z"),
        ({"connected": False}, "not connected"),
        ({"role": Role.ACTIVE}, "active"),
        ({"role": Role.FENCING}, "fencing"),
    ],
)
def test_why_names_the_one_reason(change: dict[str, object], words: str) -> None:
    o = replace(obs(), **change)  # type: ignore[arg-type]
    e = eligibility(o, ("smtp",), "2026-11-28T10:00:00Z")
    assert not e.eligible and words in e.why


def test_dirty_says_which_operation_was_abandoned() -> None:
    o = obs(dirty=True, dirty_reason="unclean: an abandoned start of postfix may still run")
    assert "abandoned start of postfix" in eligibility(o).why


def test_why_names_every_failing_check_and_rise() -> None:
    o = obs(healthy=False)
    assert "smtp, imap" in eligibility(o, ("smtp", "imap")).why
    assert "rise" in eligibility(o, ()).why


def test_no_fencing_path_is_named() -> None:
    assert "mail2" in eligibility(obs(), fence_paths_down=("mail2",)).why


def test_a_backoff_countdown_does_not_change_the_answer() -> None:
    """Published only when it changes: ticking through a back-off must not rewrite it."""
    answers = {eligibility(obs(now=t, backoff_until=150.0), (), "X") for t in range(100, 150)}
    assert len(answers) == 1
    assert eligibility(obs(now=150.0, backoff_until=150.0), (), "X") == ELIGIBLE


def test_wall_deadline_is_utc_to_the_second() -> None:
    assert wall_deadline(130.0, 100.0, 1_800_000_000.0) == "2027-01-15T08:00:30Z"
    assert wall_deadline(90.0, 100.0, 1_800_000_000.0) == "2027-01-15T08:00:00Z"


def test_member_znode_carries_eligibility_and_an_old_member_is_unknown() -> None:
    import json

    from failoverd.zk.znodes import UNKNOWN_ELIGIBILITY, MemberStatus, ZnodeError, encode

    m = MemberStatus("mail2", "standby", True, None, "1.0", "10.0.0.2", False, "", "t", 1)
    m = replace(m, eligible=False, why="it is dirty")
    assert MemberStatus.decode(encode(m)) == m
    old = json.loads(encode(m))
    del old["eligible"], old["why"]  # what a failoverd before eligibility wrote
    back = MemberStatus.decode(json.dumps(old).encode())
    assert back.eligible is False and back.why == UNKNOWN_ELIGIBILITY
    with pytest.raises(ZnodeError):
        MemberStatus.decode(json.dumps({**old, "eligible": "yes"}).encode())


def test_a_node_dirty_from_an_abandoned_operation_names_it() -> None:
    o = obs(dirty=True, dirty_reason="unclean: abandoned start")
    e = eligibility(o)
    assert not e.eligible and "dirty" in e.why and "abandoned start" in e.why
    assert decide(o).act is Act.WAIT  # the decision logic agrees: it does not contend
