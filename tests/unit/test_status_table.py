"""`failoverctl status` fits a 100-column terminal; `--wide` has every column in full.

The command runs as an operator runs it (its config file, its options) against a
stand-in for ZooKeeper holding a realistic three-member cluster: an active, a
standby whose takeover failed with long reasons, and a member that is down.
Before, the table alone was over 200 columns wide.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from failoverd.cli import status, table
from failoverd.cli.failoverctl import cli
from failoverd.zk.znodes import Breadcrumb, Control, HistoryEntry, MemberStatus
from tests.support.access import state_dir_for, write_credential

NOW = datetime.now(UTC)
START_FAILED = (
    "demoting: postfix@-.service did not start (start timed out after 30s; its processes "
    "were killed and the node stays unclean until they are confirmed gone)"
)
DIRTY = (
    "not contending: an abandoned start of postfix@-.service may still complete "
    "(the sweep has not confirmed its processes gone; failoverd retries every 10s)"
)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def member(node: str, **kw: Any) -> MemberStatus:
    base: dict[str, Any] = {
        "role": "standby",
        "healthy": True,
        "epoch": None,
        "version": "0.9.3",
        "address": "10.0.0.1",
        "maintenance": False,
        "reason": "started",
        "since": ago(hours=5),
        "eligible": True,
        "why": "",
    }
    return MemberStatus(node, **{**base, **kw})


MEMBERS = {
    "mail1": member(
        "mail1",
        role="active",
        epoch=42,
        reason="promoted with epoch 42",
        since=ago(hours=2, minutes=58),
        fence_ready={"ssh": True, "command": True},
        why="it is the active node",
    ),
    "mail2": member(
        "mail2",
        reason=START_FAILED,
        since=ago(hours=3, minutes=1),
        fence_ready={"ssh": False, "command": True, "lease-wait": True},
        eligible=False,
        why=DIRTY,
    ),
}
HISTORY = [
    HistoryEntry(ago(hours=2, minutes=58), "mail1", "promoted", 42, "x" * 150),
    HistoryEntry(ago(hours=2, minutes=59), "mail1", "fenced", 42, "mail2: " + "y" * 150),
    HistoryEntry(ago(hours=3, minutes=1), "mail2", "demoted", 41, f"{START_FAILED}; clean=False"),
]


class Cluster:
    """What `status` reads of ZooKeeper."""

    def read_lock(self, timeout: float) -> tuple[str, int, None]:
        return "mail1", 1, None

    def read_breadcrumb(self, timeout: float) -> tuple[Breadcrumb, bool, int]:
        return Breadcrumb("mail1", 42, ago(hours=2, minutes=58), False), True, 42

    def read_control(self, timeout: float) -> tuple[Control, int]:
        return Control(), 0

    def read_members(self, timeout: float) -> dict[str, MemberStatus | None]:
        return dict(MEMBERS)

    def read_history(self, limit: int, timeout: float) -> list[HistoryEntry | None]:
        return HISTORY[:limit]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    secret = tmp_path / "zk.secret"
    write_credential(secret)
    path = tmp_path / "failoverd.yaml"
    path.write_text(
        f"""\
cluster: mail-east
node: {{name: mail1, address: 10.0.0.11, state_dir: {state_dir_for(tmp_path, "mail1")}}}
peers:
  mail2: {{address: 10.0.0.12}}
  mail3-with-a-rather-long-host-name: {{address: 10.0.0.13}}
zookeeper:
  hosts: zk1:2181
  auth: {{scheme: digest, credential_file: {secret}}}
fencing:
  - {{type: command, argv: [/bin/true, "{{node}}"]}}
"""
    )

    @contextmanager
    def session(*_: Any) -> Iterator[Cluster]:
        yield Cluster()

    monkeypatch.setattr(status, "zk_session", session)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["-c", str(path), "status", *args])

    return invoke


def test_the_status_table_fits_100_columns_with_long_reasons(run: Any) -> None:
    out = run()
    assert out.exit_code == 1, out.output  # mail2 cannot take over: degraded
    lines = out.output.splitlines()
    too_wide = [line for line in lines if len(line) > 100]
    assert too_wide == [], "\n".join(too_wide)
    header = next(line for line in lines if line.startswith("NODE"))
    assert header.split() == [
        "NODE", "ROLE", "HEALTH", "ELIGIBLE", "FENCING", "VERSION", "LAST", "TRANSITION",
    ]  # fmt: skip
    mail2 = next(line for line in lines if line.startswith("mail2 "))
    assert mail2.split()[:6] == ["mail2", "standby", "healthy", "NO", "ssh:DEAD", "0.9.3"]
    assert "3h ago: demoting: postfix@-.servic\u2026" in mail2
    mail3 = next(line for line in lines if line.startswith("mail3"))
    assert mail3.split()[:5] == ["mail3-with-a-ra\u2026", "stopped", "-", "NO", "-"]
    # Nothing of why a member could not take over is cut: it is wrapped.
    text = " ".join(line.strip() for line in lines)
    assert f"mail2 could not take over: {DIRTY}" in text
    assert "mail3-with-a-rather-long-host-name could not take over: it is not connected" in text


def test_wide_has_every_column_and_every_text_in_full(run: Any) -> None:
    out = run("--wide")
    assert out.exit_code == 1, out.output
    lines = out.output.splitlines()
    header = next(line for line in lines if line.startswith("NODE"))
    for column in ("EPOCH", "CONNECTED", "SINCE"):
        assert column in header
    mail2 = next(line for line in lines if line.startswith("mail2 "))
    assert "ssh:DEAD,command:ok,lease-wait:ok" in mail2
    assert mail2.endswith(START_FAILED) and MEMBERS["mail2"].since in mail2
    assert f"mail2 could not take over: {DIRTY}" in lines
    assert any(line.endswith("x" * 150) for line in lines)  # history in full


def test_last_transition_says_how_long_ago_the_role_changed() -> None:
    now = datetime(2026, 12, 6, 13, 0, tzinfo=UTC)
    m = member("mail2", since="2026-12-06T09:59:00.000Z", reason="takeover abandoned: x")
    assert table.last_transition(m, now) == "3h ago: takeover abandoned: x"
    m = member("mail2", since="2026-12-06T12:59:30.000Z", reason="started")
    assert table.last_transition(m, now) == "30s ago: started"
    assert table.last_transition(None, now) == "-"
    m = member("mail2", since="yesterday", reason="started")  # an older daemon's text
    assert table.last_transition(m, now) == "yesterday: started"


def test_the_fencing_column_shows_unverified_and_failed_methods_not_ok() -> None:
    """A method nothing verified is not `ok` in the table: the column reads the
    OK/UNVERIFIED/FAIL results members publish, each method's worst over its peers."""
    paths = {"mail1": {"ssh": "OK", "command": "UNVERIFIED"}, "mail3": {"ssh": "FAIL"}}
    ready = {"ssh": True, "command": True}  # what an old reader saw: all "ready"
    assert table.fence_short(ready, paths) == "ssh:FAIL,command:UNVERIFIED"
    assert table.fence_column(ready, paths) == "ssh:FAIL,command:UNVERIFIED"
    failed_last = {"mail1": {"command": "UNVERIFIED", "ssh": "FAIL"}}
    assert table.fence_short(ready, failed_last) == "ssh:FAIL,command:UNVERIFIED"
    assert table.fence_short(ready, {"mail1": {"ssh": "OK"}}) == "ok"
    assert table.fence_short(ready, {"mail1": {"ssh": "garbage"}}) == "ssh:FAIL"
    # A member of an older release publishes only ready or not.
    assert table.fence_short({"ssh": False}, {}) == "ssh:DEAD"
    assert table.fence_short({}, {}) == "-"
