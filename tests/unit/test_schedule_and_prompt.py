"""`failoverctl switchover --at TIME` (cli/when.py, node/schedule.py) and the
question a command asks on a terminal (cli/prompt.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import click
import pytest
from click.testing import CliRunner

from failoverd.cli import prompt
from failoverd.cli.failoverctl import cli
from failoverd.cli.prompt import ask
from failoverd.cli.when import parse_at
from failoverd.node.operator_audit import OperatorAudit
from failoverd.node.schedule import Due, due
from failoverd.zk.znodes import Control, OperatorRequest, OperatorRequests, Request

PLUS1 = timezone(timedelta(hours=1))
NOW = datetime(2026, 12, 6, 23, 30, tzinfo=PLUS1)  # 22:30 UTC


def test_an_iso_time_with_its_offset_is_stored_as_utc_seconds() -> None:
    expect = datetime(2026, 12, 7, 1, 0, tzinfo=UTC).timestamp()
    assert parse_at("2026-12-07T02:00:00+01:00", NOW) == expect
    assert parse_at("2026-12-07T01:00:00Z", NOW) == expect


def test_hh_mm_is_the_next_such_local_time() -> None:
    local = datetime.now().astimezone()
    now = local.replace(hour=12, minute=0, second=0, microsecond=0)
    later = parse_at("13:15", now)
    assert datetime.fromtimestamp(later).astimezone().date() == now.date()
    assert later - now.timestamp() == 75 * 60
    earlier = parse_at("11:00", now)  # already past today: tomorrow
    assert datetime.fromtimestamp(earlier).astimezone().date() == now.date() + timedelta(days=1)
    assert parse_at("12:00", now) > now.timestamp()  # "now" is not ahead: tomorrow


@pytest.mark.parametrize(
    "text, why",
    [
        ("2026-12-07T02:00:00", "has no offset"),
        ("2026-12-06T20:00:00+01:00", "not in the future"),
        ("2027-01-30T02:00:00Z", "days ahead"),
        ("25:00", "neither HH:MM nor"),
        ("tomorrow", "neither HH:MM nor"),
    ],
)
def test_a_bad_time_says_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_at(text, NOW)


def test_a_bad_at_is_a_usage_error_before_anything_is_read() -> None:
    got = CliRunner().invoke(cli, ["-c", "/nonexistent.yaml", "switchover", "--at", "25:00"])
    assert got.exit_code == 2
    assert "--at" in got.output and "neither HH:MM" in got.output


def test_cancel_with_a_time_is_a_usage_error() -> None:
    got = CliRunner().invoke(
        cli, ["-c", "/nonexistent.yaml", "switchover", "--cancel", "--at", "13:00"]
    )
    assert got.exit_code == 2 and "--cancel takes no" in got.output


SCHEDULED = Request(
    "0f8fad5b-d9cb-469f-a165-70867728950e", "mail2", 30.0, "alice", "t", "", at=1000.0
)


@pytest.mark.parametrize(
    "now, expect", [(999.9, Due.WAIT), (1000.0, Due.NOW), (1030.0, Due.NOW), (1030.1, Due.MISSED)]
)
def test_a_schedule_is_due_at_its_time_and_missed_a_timeout_later(now: float, expect: Due) -> None:
    assert due(SCHEDULED, now, window=30.0) is expect


def test_a_schedule_without_a_time_is_garbage_and_nothing_happens() -> None:
    # failoverctl always writes `at`: a schedule without one was not written by it.
    raw = json.dumps({
        "v": 1, "failover": None, "switchover": None, "maintenance": False,
        "maintenance_by": "", "maintenance_reason": "", "maintenance_since": "",
        "fence_confirmed": None,
        "scheduled": {"id": "0b6c1f9e-6d3c-4c1e-9a57-2a1c1f7d2b10", "to": None, "timeout": 60,
                      "requested_by": "x", "requested_at": "2026-01-01T00:00:00Z"},
    }).encode()  # fmt: skip
    assert Control.decode(raw).scheduled is None
    # And one that reaches `due` all the same is never carried out.
    assert due(replace(SCHEDULED, at=None), 1000.0, window=30.0) is Due.MISSED


def test_history_credits_a_scheduled_switchover_that_came_due_to_who_scheduled_it() -> None:
    audit = OperatorAudit("mail1")
    vouched = {
        "bob": (OperatorRequests((OperatorRequest("switchover_scheduled", SCHEDULED.id),)), 950)
    }
    changes = audit.changes(Control(scheduled=SCHEDULED), recorder=True)
    [entry] = audit.entries(changes, vouched, 1000, 3, 0.0)
    assert (entry.event, entry.by) == ("switchover_scheduled", "bob")
    assert entry.reason == "to mail2 at 1970-01-01T00:16:40Z"
    # Come due: the active moved it into `switchover`; the request znode is stale by now.
    moved = Control(switchover=SCHEDULED)
    changes = audit.changes(moved, recorder=True)
    assert [c.kind for c in changes] == ["switchover"]  # moved, not cancelled
    [entry] = audit.entries(changes, {}, 10_000_000, 3, 0.0)
    assert (entry.event, entry.by) == ("switchover_requested", "bob")


def test_history_records_a_withdrawn_schedule() -> None:
    audit = OperatorAudit("mail1")
    audit.changes(Control(scheduled=SCHEDULED), recorder=True)
    [change] = audit.changes(Control(), recorder=True)
    assert (change.kind, change.ref, change.event) == (
        "switchover_cancelled",
        SCHEDULED.id,
        "switchover_cancelled",
    )


# -- the question ----------------------------------------------------------------------


@click.command()
@click.option("--yes", is_flag=True)
def change(yes: bool) -> None:
    ask("Switch over?", yes)
    click.echo("changed")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompt, "on_terminal", lambda: True)


@pytest.mark.usefixtures("terminal")
def test_on_a_terminal_no_is_refused_and_changes_nothing() -> None:
    got = CliRunner().invoke(change, [], input="n\n")
    assert got.exit_code == 1
    assert "Switch over? [y/N]" in got.output
    assert "not confirmed: nothing was changed" in got.output
    assert "changed" not in got.output.splitlines()


@pytest.mark.usefixtures("terminal")
def test_on_a_terminal_yes_goes_on() -> None:
    got = CliRunner().invoke(change, [], input="y\n")
    assert got.exit_code == 0 and got.output.endswith("changed\n")


@pytest.mark.usefixtures("terminal")
def test_yes_skips_the_question() -> None:
    got = CliRunner().invoke(change, ["--yes"])
    assert got.exit_code == 0 and "[y/N]" not in got.output


def test_off_a_terminal_nothing_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompt, "on_terminal", lambda: False)
    got = CliRunner().invoke(change, [])
    assert got.exit_code == 0 and "[y/N]" not in got.output


class _Tty:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("stdin, stdout, asks", [(1, 1, True), (1, 0, False), (0, 1, False)])
def test_a_terminal_is_stdin_and_stdout_both(
    monkeypatch: pytest.MonkeyPatch, stdin: int, stdout: int, asks: bool
) -> None:
    # Output captured by a program (stdin still the operator's tty): no question
    # into a pipe nobody reads.
    monkeypatch.setattr("sys.stdin", _Tty(bool(stdin)))
    monkeypatch.setattr("sys.stdout", _Tty(bool(stdout)))
    assert prompt.on_terminal() is asks
