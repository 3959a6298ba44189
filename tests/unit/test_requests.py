"""The daemon's own check of operator requests (failoverd/node/requests.py), with
plain values: who a request may name, how long it lives, and what two at once do."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from failoverd.node.decision import Act, Role, decide
from failoverd.node.eligibility import eligibility
from failoverd.node.requests import FAILOVER, SWITCHOVER, Requests, check_requests, parse_time
from failoverd.zk.znodes import UNKNOWN_ELIGIBILITY, Control, MemberStatus, Request
from tests.unit.test_decision import obs

NOW = datetime(2026, 12, 6, 21, 0, 0, tzinfo=UTC).timestamp()
CONFIGURED = ("mail1", "mail2", "mail3")
BOUNDS = {SWITCHOVER: 10.0, FAILOVER: 12.0}
RID = "00000000-0000-4000-8000-000000000001"
RID2 = "00000000-0000-4000-8000-000000000002"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request(
    to: str | None = "mail2", at: float = NOW, timeout: float = 3600.0, **kw: Any
) -> Request:
    return Request(kw.pop("id", RID), to, timeout, "mallory", iso(at), **kw)


def member(name: str, **kw: Any) -> MemberStatus:
    base = MemberStatus(name, "standby", True, None, "1", "a", False, "", "", eligible=True, why="")
    return replace(base, **kw)


MEMBERS: dict[str, MemberStatus | None] = {n: member(n) for n in CONFIGURED}


def check(
    req: Request | None = None,
    kind: str = SWITCHOVER,
    node: str = "mail3",
    members: dict[str, MemberStatus | None] | None = None,
    now: float = NOW,
    seen_for: float = 0.0,
    other: tuple[str, Request] | None = None,
) -> Requests:
    reqs = {kind: req or request()}
    if other is not None:
        reqs[other[0]] = other[1]
    control = Control(switchover=reqs.get(SWITCHOVER), failover=reqs.get(FAILOVER))
    return check_requests(
        control,
        node=node,
        configured=CONFIGURED,
        members=MEMBERS if members is None else members,
        now_wall=now,
        bounds=BOUNDS,
        seen_for={r.id: seen_for for r in reqs.values()},
    )


def code(requests: Requests) -> str:
    (c,) = requests.checks
    return c.code


# -- the target ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", [SWITCHOVER, FAILOVER])
def test_a_ghost_target_is_ignored(kind: str) -> None:
    r = check(request("ghost"), kind)
    assert code(r) == "ghost" and r.switchover is None and r.failover is None
    assert "ghost is not a configured member" in r.checks[0].sentence()
    assert "mallory" in r.checks[0].sentence() and iso(NOW) in r.checks[0].sentence()


@pytest.mark.parametrize(
    "members, want",
    [
        ({n: m for n, m in MEMBERS.items() if n != "mail2"}, "disconnected"),
        ({**MEMBERS, "mail2": None}, "unreadable"),
        ({**MEMBERS, "mail2": member("mail2", healthy=False)}, "unhealthy"),
        ({**MEMBERS, "mail2": member("mail2", eligible=False, why="backing off")}, "ineligible"),
        ({**MEMBERS, "mail2": member("mail2", role="active", eligible=False)}, "ineligible"),
    ],
)
@pytest.mark.parametrize("kind", [SWITCHOVER, FAILOVER])
def test_a_target_that_is_not_connected_healthy_and_eligible_is_ignored(
    kind: str, members: dict[str, MemberStatus | None], want: str
) -> None:
    r = check(request("mail2"), kind, members=members)
    assert code(r) == want
    assert r.switchover_to is None and not r.switchover_pending and r.failover_to is None


def test_the_ineligible_targets_own_why_is_given() -> None:
    members = {**MEMBERS, "mail2": member("mail2", eligible=False, why="it is dirty")}
    assert "mail2 could not take over: it is dirty" in check(members=members).checks[0].problem


def test_a_member_from_before_eligibility_was_published_is_judged_as_before() -> None:
    old = member("mail2", eligible=False, why=UNKNOWN_ELIGIBILITY)
    assert check(members={**MEMBERS, "mail2": old}).switchover_to == "mail2"
    for change in ({"maintenance": True}, {"role": "active"}, {"healthy": False}):
        members = {**MEMBERS, "mail2": replace(old, **change)}
        assert check(members=members).switchover is None, change


def test_this_node_as_target_judges_itself_not_its_published_status() -> None:
    # Its own status may lag; the decision reads its own observation instead.
    for members in ({}, {"mail2": None}, {"mail2": member("mail2", healthy=False)}):
        assert check(node="mail2", members=members).switchover_to == "mail2"
        assert check(kind=FAILOVER, node="mail2", members=members).failover_to == "mail2"


def test_an_untargeted_switchover_is_valid_an_untargeted_failover_is_not() -> None:
    r = check(request(None))
    assert r.switchover_pending and r.switchover_to is None
    assert code(check(request(None), FAILOVER)) == "no_target"


def test_a_valid_request() -> None:
    r = check()
    assert r.switchover_to == "mail2" and r.ignored == ()
    assert r.checks[0].sentence().endswith("is pending")


# -- its life --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [SWITCHOVER, FAILOVER])
def test_a_request_expires_after_the_configured_bound_from_its_own_timestamp(kind: str) -> None:
    life = BOUNDS[kind]
    # Its own timeout says an hour; this node's config says `life`.
    assert check(request(at=NOW - life + 0.5), kind).checks[0].valid
    assert code(check(request(at=NOW - life), kind)) == "expired"
    # A restarted daemon has just seen it (seen_for 0): still expired.
    assert code(check(request(at=NOW - 3000), kind, seen_for=0.0)) == "expired"


def test_a_shorter_timeout_in_the_request_wins() -> None:
    assert code(check(request(at=NOW - 3, timeout=2.0))) == "expired"
    assert code(check(request(timeout=0.0))) == "expired"


def test_a_timestamp_slightly_in_the_future_counts_from_when_it_was_seen() -> None:
    ahead = request(at=NOW + 5)  # another machine's clock runs 5 s ahead
    assert check(ahead, seen_for=0.0).checks[0].valid
    assert check(ahead, seen_for=9.0).checks[0].valid
    assert code(check(ahead, seen_for=10.0)) == "expired"


def test_a_timestamp_further_ahead_than_the_life_is_ignored() -> None:
    # Each restart would otherwise give it a fresh life.
    r = check(request(at=NOW + 3600))
    assert code(r) == "future" and "in the future" in r.checks[0].problem


def test_the_wall_clock_stepping_back_does_not_extend_a_request() -> None:
    r = check(request(at=NOW), now=NOW - 100, seen_for=10.0)
    assert code(r) == "future"  # the step is larger than the life
    assert code(check(request(at=NOW), now=NOW - 3, seen_for=10.0)) == "expired"


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-12-06T21:00:00", "2026-13-06T21:00:00Z", "9" * 5000]
)
def test_a_timestamp_that_is_not_a_time_with_a_zone_is_ignored(text: str) -> None:
    r = check(replace(request(), requested_at=text))
    assert code(r) == "bad_time" and parse_time(text) is None


def test_a_served_request_is_left_out() -> None:
    control = Control(switchover=request())
    r = check_requests(
        control, node="mail1", configured=CONFIGURED, members=MEMBERS, now_wall=NOW,
        bounds=BOUNDS, done={RID},
    )  # fmt: skip
    assert r.checks == ()


def test_every_combination_is_valid_exactly_when_each_part_is() -> None:
    targets = {
        "ghost": ("ghost", MEMBERS),
        "self": ("mail3", {}),
        "ok": ("mail2", MEMBERS),
        "gone": ("mail2", {"mail1": MEMBERS["mail1"]}),
        "sick": ("mail2", {**MEMBERS, "mail2": member("mail2", healthy=False)}),
        "busy": ("mail2", {**MEMBERS, "mail2": member("mail2", eligible=False, why="x")}),
    }
    ages = {"fresh": NOW - 1, "old": NOW - 13, "ahead": NOW + 1, "far": NOW + 99}
    for kind, (t, (to, members)), (a, at) in itertools.product(
        (SWITCHOVER, FAILOVER), targets.items(), ages.items()
    ):
        r = check(request(to, at=at), kind, node="mail3", members=members)
        want = t in ("self", "ok") and a in ("fresh", "ahead")
        assert r.checks[0].valid is want, (kind, t, a, r)
        assert (r.switchover_to if kind == SWITCHOVER else r.failover_to) == (to if want else None)


# -- two at once ---------------------------------------------------------------------


def test_a_failover_written_next_to_a_switchover_is_ignored_the_switchover_counts() -> None:
    r = check(request("mail2"), other=(FAILOVER, request("mail3", id=RID2)), node="mail1")
    assert [c.code for c in r.checks] == ["", "conflict"]
    assert r.switchover_to == "mail2" and r.failover_to is None
    # By the forced target too, which would otherwise contend whatever its health.
    r = check(request("mail2"), other=(FAILOVER, request("mail3", id=RID2)), node="mail3")
    assert r.switchover_to == "mail2" and r.failover_to is None


@pytest.mark.parametrize(
    "sw",
    [
        request("ghost"),
        request("mail2", at=NOW - 3000),
        replace(request("mail2"), requested_at="garbage"),
        request("mail2", at=NOW + 3600),
    ],
)
def test_a_failover_next_to_a_switchover_is_ignored_whatever_the_switchover_is(
    sw: Request,
) -> None:
    """Whether the switchover counts depends on members and clocks, which differ a
    little between nodes; what `control` holds is the same for all of them."""
    for node in CONFIGURED:
        r = check(sw, other=(FAILOVER, request("mail3", id=RID2)), node=node)
        assert r.failover_to is None and r.switchover is None, node


def test_with_one_of_two_ignored_the_other_counts() -> None:
    sick = {**MEMBERS, "mail3": member("mail3", healthy=False)}
    r = check(
        request("mail2"), other=(FAILOVER, request("mail3", id=RID2)), node="mail1", members=sick
    )
    assert r.switchover_to == "mail2" and r.failover_to is None


def views(
    health: dict[str, bool], control: Control, active: str | None, done: str = ""
) -> dict[str, Any]:
    """Each node's decision in a three-node cluster, from its own view."""
    members = {
        n: member(
            n,
            healthy=health[n],
            role="active" if n == active else "standby",
            eligible=health[n] and n != active,
            why="" if health[n] and n != active else "x",
        )
        for n in CONFIGURED
    }
    out = {}
    for n in CONFIGURED:
        if n == done:
            continue
        r = check_requests(
            control, node=n, configured=CONFIGURED, members=members, now_wall=NOW, bounds=BOUNDS
        )
        o = obs(
            node=n,
            healthy=health[n],
            switchover_to=r.switchover_to,
            switchover_pending=r.switchover_pending,
            failover_to=r.failover_to,
            requests=r,
            healthy_peer=any(health[p] for p in CONFIGURED if p not in (n, active)),
        )
        if n == active:
            o = replace(o, role=Role.ACTIVE, lease_valid=True, lock_holder=n, lock_is_ours=True)
        out[n] = decide(o)
    return out


@pytest.mark.parametrize("sw_to", ["mail2", "mail3", None, "ghost"])
@pytest.mark.parametrize("fo_to", ["mail2", "mail3", "ghost"])
@pytest.mark.parametrize("health", list(itertools.product((True, False), repeat=2)))
def test_a_switchover_and_a_failover_written_together_never_hand_the_lease_to_a_sick_node(
    sw_to: str | None, fo_to: str, health: tuple[bool, bool]
) -> None:
    """mail1 is active and healthy; the writer asks it to step down and names a
    target for the lease it frees. At most one request is acted on, and whoever
    contends for the freed lease is healthy."""
    healthy = {"mail1": True, "mail2": health[0], "mail3": health[1]}
    control = Control(switchover=request(sw_to), failover=request(fo_to, id=RID2))
    first = views(healthy, control, active="mail1")
    if first["mail1"].act is not Act.DEMOTE:
        return  # the active stays: nothing was handed over
    assert first["mail1"].code == "switchover"
    after = views(healthy, control, active=None, done="mail1")
    contenders = [n for n, d in after.items() if d.act is Act.CONTEND]
    assert all(healthy[n] for n in contenders), (after, contenders)


def test_the_audited_combination_hands_over_to_the_healthy_switchover_target() -> None:
    """The audit's case: a switchover to healthy mail2 with a forced failover to
    unhealthy mail3. mail1 steps down for the switchover; mail3 does not force."""
    healthy = {"mail1": True, "mail2": True, "mail3": False}
    control = Control(switchover=request("mail2"), failover=request("mail3", id=RID2))
    assert views(healthy, control, active="mail1")["mail1"].code == "switchover"
    after = views(healthy, control, active=None, done="mail1")
    assert after["mail2"].act is Act.CONTEND and after["mail3"].act is Act.WAIT


# -- what the node publishes -----------------------------------------------------------


def test_a_standby_standing_aside_for_a_valid_request_is_not_eligible() -> None:
    r = check(request("mail2"), node="mail1")
    o = obs(switchover_pending=True, switchover_to="mail2", requests=r)
    assert decide(o).act is Act.WAIT
    e = eligibility(o)
    assert not e.eligible and e.why.startswith("standing aside: switchover to mail2")
    assert "mallory" in e.why


def test_an_ignored_request_leaves_the_standby_eligible_and_shows_in_why() -> None:
    r = check(request("ghost"), node="mail1")
    o = obs(requests=r)  # nothing valid is pending: the decision fields stay empty
    assert decide(o).act is Act.CONTEND
    e = eligibility(o)
    assert e.eligible and "switchover to ghost requested by mallory" in e.why
    assert "is ignored: ghost is not a configured member" in e.why
    sick = eligibility(replace(o, healthy=False), ("smtp",))
    assert not sick.eligible and sick.why.startswith("health check failing: smtp; ")


def test_failoverctls_verdict_names_every_pending_request_with_who_and_when() -> None:
    from failoverd.cli.status import verdict

    rows = [
        {"node": "mail1", "role": "active", "healthy": True, "eligible": False, "why": "x"},
        {"node": "mail2", "role": "standby", "healthy": True, "eligible": True, "why": ""},
    ]
    rows[1]["fence_paths"] = {"mail1": {"ssh": "OK"}}  # it can verifiably fence mail1
    status = {"lease_holder": "mail1", "maintenance": False, "members": rows}
    ok, plain = verdict(status)
    control = Control(switchover=request("ghost"), failover=request("mail2", id=RID2))
    r = check_requests(
        control, node="", configured=CONFIGURED, members=MEMBERS, now_wall=NOW, bounds=BOUNDS
    )
    ok2, sentence = verdict(status, requests=r)
    assert ok and ok2 and sentence.startswith(plain)
    assert f"switchover to ghost requested by mallory at {iso(NOW)} is ignored" in sentence
    assert f"failover to mail2 requested by mallory at {iso(NOW)} is ignored: a switch" in sentence
    alone = check_requests(
        Control(failover=request("mail2", id=RID2)),
        node="", configured=CONFIGURED, members=MEMBERS, now_wall=NOW, bounds=BOUNDS,
    )  # fmt: skip
    _, sentence = verdict(status, requests=alone)
    assert sentence == f"{plain}; failover to mail2 requested by mallory at {iso(NOW)} is pending"


def test_operator_written_text_is_cut_short_before_it_goes_into_why() -> None:
    """`why` goes into every member's status, which peers refuse to read beyond
    64 KiB: a huge `requested_by` must not make every member unreadable."""
    huge = replace(request("ghost"), requested_by="m" * 60_000, requested_at="9" * 60_000)
    r = check(huge, node="mail1")
    e = eligibility(obs(requests=r))
    assert e.eligible and len(e.why) < 400, len(e.why)
    assert code(r) == "bad_time" and len(r.checks[0].problem) < 200


@pytest.mark.parametrize("sw", [None, "mail1", "mail2", "any"])
@pytest.mark.parametrize("fo", [None, "mail1", "mail2"])
def test_eligible_agrees_with_the_decision_for_every_pending_request(
    sw: str | None, fo: str | None
) -> None:
    """A free, healthy standby (mail1) is eligible exactly when the decision lets it
    contend: standing aside for a valid request is not eligible (the audit saw a
    standby stand aside while it published eligible=true)."""
    control = Control(
        switchover=None if sw is None else request(None if sw == "any" else sw),
        failover=None if fo is None else request(fo, id=RID2),
    )
    r = check_requests(
        control, node="mail1", configured=CONFIGURED, members=MEMBERS, now_wall=NOW, bounds=BOUNDS
    )
    o = obs(
        switchover_to=r.switchover_to,
        switchover_pending=r.switchover_pending,
        failover_to=r.failover_to,
        requests=r,
    )
    assert eligibility(o).eligible is (decide(o).act is Act.CONTEND), (r, decide(o))
    bare = replace(o, requests=Requests())  # the fields alone say the same
    assert eligibility(bare).eligible is (decide(bare).act is Act.CONTEND)


def test_two_members_quoting_each_others_why_stay_bounded_and_settle() -> None:
    """mail1 ignores a switchover to mail2 and quotes mail2's `why`, which names the
    requests mail2 ignores in turn: published back and forth, neither grows without
    bound, and both stop changing."""
    control = Control(switchover=request("mail2"), failover=request("mail1", id=RID2))
    why = {"mail1": "backing off", "mail2": "backing off"}
    seen = []
    for _ in range(6):
        for n in ("mail1", "mail2"):
            other = "mail2" if n == "mail1" else "mail1"
            m = {other: member(other, eligible=False, why=why[other])}
            r = check_requests(
                control, node=n, configured=CONFIGURED, members=m, now_wall=NOW, bounds=BOUNDS
            )
            why[n] = eligibility(obs(node=n, backoff_until=1e9, requests=r), (), "T").why
        seen.append(dict(why))
    assert all(len(w) < 600 for w in why.values()), why
    assert seen[-1] == seen[-2]
