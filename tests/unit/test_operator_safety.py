"""Operator safety: redaction before publishing, terminal escaping,
operator identity and history records, the fence marker's files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from failoverd.cli.identity import operator_name, read_operator_credential
from failoverd.cli.terminal import printable
from failoverd.fencing.fence_self import parse_ssh_original_command
from failoverd.fencing.marker import FenceMarker, MarkerUnreadable, marker_ahead
from failoverd.node.operator_audit import OperatorAudit, is_recorder
from failoverd.observe.redact import redact, redact_argv
from failoverd.zk.znodes import UNREADABLE_CONTROL, Control, MemberStatus, Request

RID = "0f8fad5b-d9cb-469f-a165-70867728950e"


# --- redaction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("pdu-off --password=hunter2 mail1", "hunter2"),
        ("pdu-off --password hunter2 mail1", "hunter2"),
        ("curl https://ops:s3cr3t@pdu.example/off", "s3cr3t"),
        ("api call token=abc123def&node=mail1", "abc123def"),
        ('{"secret": "q9q9q9"}', "q9q9q9"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9"),
        ("exited 1: login failed, apikey=XYZ987", "XYZ987"),
    ],
)
def test_secrets_are_redacted(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and "***" in out


def test_plain_commands_are_left_alone() -> None:
    for text in ("command /usr/local/bin/check-spool --queue active", "smtp 127.0.0.1:25"):
        assert redact(text) == text
    assert redact_argv(["/bin/check", "--token", "t0k"]) == "/bin/check --token ***"


def test_command_check_name_used_as_metric_label_is_redacted() -> None:
    from failoverd.health import CommandCheck

    check = CommandCheck(["/usr/bin/check-imap", "--password=hunter2"], 1.0)
    assert "hunter2" not in check.name


def test_history_and_member_reasons_are_redacted_before_they_reach_zookeeper() -> None:
    from failoverd.zk.coordinator import Coordinator

    sent: list[bytes] = []

    class FakeClient:
        def create_async(self, path: str, data: bytes, **_kw: object) -> None:
            sent.append(data)

    coord = Coordinator.__new__(Coordinator)
    coord.client = FakeClient()  # type: ignore[assignment]
    coord.history_path, coord.requests = "/h", 0
    from failoverd.zk.znodes import HistoryEntry

    coord.append_history(HistoryEntry("t", "mail1", "fence_failed", 3, "pdu --token=s3cr3t: 1"))
    assert b"s3cr3t" not in sent[0] and b"***" in sent[0]


# --- terminal ----------------------------------------------------------------------------


def test_control_characters_from_zookeeper_are_escaped() -> None:
    hostile = "mail1\x1b[2J\x1b]0;owned\x07\r\n\u202egnp.exe\x9b"
    out = printable(hostile)
    assert all(c not in out for c in ("\x1b", "\x07", "\r", "\n", "\u202e", "\x9b"))
    assert out.startswith("mail1\\x1b[2J\\x1b]0;owned\\x07\\x0d\\x0a\\u202e")
    assert printable("plain text, ünïcode ok") == "plain text, ünïcode ok"


# --- operator identity and history --------------------------------------------------------


def test_operator_credential_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "alice.secret"
    path.write_text("alice:pw\n")
    path.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        read_operator_credential(str(path))
    path.chmod(0o600)
    assert read_operator_credential(str(path)) == "alice:pw"
    assert operator_name("alice:pw") == "alice"
    path.write_text("no-colon\n")
    with pytest.raises(ValueError, match="user:password"):
        read_operator_credential(str(path))


def test_without_a_credential_the_login_behind_sudo_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUDO_USER", "bob")
    monkeypatch.setenv("USER", "root")
    assert operator_name(None).startswith("node:")
    assert operator_name(None).endswith("(sudo user bob, claimed)")
    monkeypatch.delenv("SUDO_USER")
    assert operator_name(None).endswith("(sudo user root, claimed)")


def _member(name: str) -> MemberStatus:
    return MemberStatus(name, "standby", True, None, "1", "a", False, "", "t")


def test_exactly_one_member_records_operator_actions() -> None:
    members = {"mail1": _member("mail1"), "mail2": _member("mail2")}
    assert is_recorder("mail2", True, "mail2", members)  # the active
    assert not is_recorder("mail1", False, "mail2", members)
    # nobody active: the first connected configured member by name
    assert is_recorder("mail1", False, None, members)
    assert not is_recorder("mail2", False, None, members)
    assert is_recorder("mail2", False, None, {"mail1": None, "mail2": _member("mail2")})


def _record(audit: OperatorAudit, control: Control, recorder: bool, epoch: int | None) -> list:
    """What the recorder writes when no request znode vouches for anything."""
    return audit.entries(audit.changes(control, recorder), {}, 0, epoch, 0.0)


def test_maintenance_changes_and_requests_become_history_entries_once() -> None:
    audit = OperatorAudit("mail1")
    assert _record(audit, Control(), True, 3) == []  # the state found at start is no change
    on = Control(
        True, maintenance_by="alice", maintenance_reason="disk swap", maintenance_since="t"
    )
    (entry,) = _record(audit, on, True, 3)
    assert (entry.event, entry.by, entry.reason, entry.epoch) == (
        "maintenance_on",
        "alice (claimed, via control)",  # no request znode vouched for it
        "disk swap",
        3,
    )
    assert _record(audit, on, True, 3) == []
    req = Request(RID, "mail2", 10.0, "bob", "t", "kernel update")
    (entry,) = _record(audit, Control(True, req, None, "alice", "disk swap", "t"), True, 3)
    assert (entry.event, entry.by, entry.reason) == (
        "switchover_requested",
        "bob (claimed, via control)",
        "to mail2: kernel update",
    )
    assert _record(audit, UNREADABLE_CONTROL, True, 3) == []


def test_a_non_recorder_follows_changes_without_writing_them() -> None:
    audit = OperatorAudit("mail2")
    _record(audit, Control(), False, None)
    assert _record(audit, Control(True, maintenance_by="alice"), False, None) == []
    # when it later becomes the recorder, old changes are not replayed
    assert _record(audit, Control(True, maintenance_by="alice"), True, None) == []


# --- fence marker and fence-self --------------------------------------------------------


def test_marker_write_ignores_a_symlink_planted_at_the_old_temp_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    # The old code wrote to .fence.marker.tmp.<pid> with O_CREAT|O_TRUNC (following links).
    (state / f".fence.marker.tmp.{os.getpid()}").symlink_to(victim)
    FenceMarker(state).write(5, by="test")
    assert victim.read_text() == "keep me"
    assert FenceMarker(state).fenced_epoch() == 5


def test_a_symlinked_marker_or_lock_is_not_followed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text('{"v": 1, "epoch": 0}')
    (state / "fence.marker").symlink_to(target)
    with pytest.raises(MarkerUnreadable):
        FenceMarker(state).fenced_epoch()
    (state / "fence.lock").symlink_to(tmp_path / "lock-target")
    with pytest.raises(OSError), FenceMarker(state).held(0.1):
        pass
    assert not (tmp_path / "lock-target").exists()


def test_marker_ahead_of_zookeeper_is_reported(tmp_path: Path) -> None:
    m = FenceMarker(tmp_path / "state")
    assert marker_ahead(m, 4) is None  # no marker
    m.write(5, by="test")
    assert marker_ahead(m, 4) is None  # a takeover in progress fences epoch+1 first
    assert marker_ahead(m, 3) == 5


def test_fence_self_refuses_epochs_zookeeper_never_issues() -> None:
    assert parse_ssh_original_command("fence-self --epoch 9007199254740991") == (2**53 - 1, False)
    for cmd in ("fence-self --epoch 9007199254740992", "fence-self --epoch 99999999999999999"):
        with pytest.raises(ValueError):
            parse_ssh_original_command(cmd)
