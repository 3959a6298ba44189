"""Rolling upgrades (failoverd/zk/formats.py): the new code reads what release 0.1.0
wrote, byte for byte; 0.1.0 reads what the new code writes; unknown fields are
ignored; an unknown format number is the unsafe case; writers write the newest
format every member reads."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from failoverd.fencing.marker import FenceMarker
from failoverd.node.decision import next_epoch, plan_fencing
from failoverd.zk import formats
from failoverd.zk.formats import write_format
from failoverd.zk.znodes import (
    Breadcrumb,
    Control,
    HistoryEntry,
    LockData,
    MemberStatus,
    ZnodeError,
    encode,
)

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "release-0.1.0"


def old_release() -> ModuleType:
    """Release 0.1.0's znode decoder, loaded under its own name."""
    spec = importlib.util.spec_from_file_location("znodes_0_1_0", OLD / "znodes_0_1_0.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def raw(name: str) -> bytes:
    return (OLD / name).read_bytes()


# -- new code reads the previous release's znodes ------------------------------------


def test_breadcrumbs_written_by_0_1_0_are_read_exactly() -> None:
    assert Breadcrumb.decode(raw("active.json")) == Breadcrumb(
        "mail1", 7, "2026-11-28T08:56:22.990Z", False
    )
    assert Breadcrumb.decode(raw("active-clean.json")).clean is True
    initial = Breadcrumb.decode(raw("active-initial.json"))
    assert (initial.node, initial.epoch, initial.clean) == (None, 0, True)


def test_member_statuses_written_by_0_1_0_read_as_format_1_without_marker() -> None:
    active = MemberStatus.decode(raw("member-active.json"))
    assert (active.node, active.role, active.epoch, active.priority) == ("mail1", "active", 7, 0)
    standby = MemberStatus.decode(raw("member-standby.json"))
    assert (standby.role, standby.epoch, standby.priority) == ("standby", None, 1)
    # 0.1.0 published no formats and no marker epoch: it reads format 1 only.
    assert active.formats == standby.formats == (1,)
    assert active.fence_epoch is standby.fence_epoch is None
    assert active.seen_epoch is standby.seen_epoch is None
    # Nor the commit it was built from: status shows its version alone.
    assert (active.version, active.commit) == ("0.1.0", "")


def test_control_history_lock_and_marker_written_by_0_1_0_are_read() -> None:
    assert Control.decode(raw("control.json")) == Control()
    assert Control.decode(raw("control-maintenance.json")).maintenance is True
    sw = Control.decode(raw("control-switchover.json")).switchover
    assert sw is not None and (sw.to, sw.timeout, sw.requested_by) == ("mail2", 10.0, "mail1")
    entry = HistoryEntry.decode(raw("history.json"))
    assert (entry.node, entry.event, entry.epoch) == ("mail2", "promoted", 8)
    assert LockData.decode(raw("lock.json")) == LockData("mail1", "0x100000abcdef0001")


def test_a_fence_marker_written_by_0_1_0_still_blocks_its_epochs(tmp_path: Path) -> None:
    (tmp_path / "fence.marker").write_bytes(raw("fence.marker"))
    marker = FenceMarker(tmp_path)
    assert marker.fenced_epoch() == 7
    assert marker.blocks(7) and not marker.blocks(8)
    assert marker.published_epoch() == 7


# -- the previous release reads what the new code writes -----------------------------


def test_0_1_0_reads_every_znode_the_new_code_writes() -> None:
    old = old_release()
    crumb = Breadcrumb("mail2", 9, "2026-11-28T10:00:00.000Z", False)
    assert old.Breadcrumb.decode(encode(crumb)).epoch == 9
    member = MemberStatus(
        "mail2", "active", True, 9, "0.2.0", "10.0.0.12", False, "promoted", "t", 1,
        fence_epoch=7, commit="3f2a9c1",
    )  # fmt: skip
    seen = old.MemberStatus.decode(encode(member, write_format({}, ["mail1", "mail2"])))
    assert (seen.node, seen.role, seen.epoch, seen.version) == ("mail2", "active", 9, "0.2.0")
    assert old.Control.decode(encode(Control(maintenance=True))).maintenance is True
    entry = HistoryEntry("t", "mail2", "promoted", 9, "why")
    assert old.HistoryEntry.decode(encode(entry)).epoch == 9


# -- the rule ------------------------------------------------------------------------


def with_field(name: str, **extra: object) -> bytes:
    data = json.loads(raw(name))
    data.update(extra)
    return json.dumps(data).encode()


def test_unknown_fields_in_a_format_1_znode_are_ignored() -> None:
    crumb = Breadcrumb.decode(with_field("active.json", lease_ms=1500, origin={"dc": "east"}))
    assert (crumb.node, crumb.epoch) == ("mail1", 7)
    member = MemberStatus.decode(with_field("member-active.json", fence_ready={"ssh": True}))
    assert member.epoch == 7
    assert Control.decode(with_field("control.json", paged_by="x")) == Control()


@pytest.mark.parametrize("v", [99, 2, 0, None, "1", True, 1.0])
def test_an_unknown_format_is_unreadable_and_the_winner_fences_every_peer(v: object) -> None:
    data = with_field("active.json", v=v)
    with pytest.raises(ZnodeError, match="unknown schema version"):
        Breadcrumb.decode(data)
    # What coordination.read_breadcrumb makes of it: not readable -> fence everyone.
    plan = plan_fencing(None, False, "mail2", ("mail1", "mail3"))
    assert plan.targets == ("mail1", "mail3")
    # ...and the epoch still goes up: the znode's version stands in for the epoch.
    assert next_epoch(None, False, znode_version=12, floor=7) == 13


def test_unknown_formats_in_member_status_and_control_are_unsafe_too() -> None:
    with pytest.raises(ZnodeError):
        MemberStatus.decode(with_field("member-active.json", v=99))
    with pytest.raises(ZnodeError):
        Control.decode(with_field("control.json", v=99))


@pytest.mark.parametrize("bad", [[], "1", [0], [True], None, {"1": 1}])
def test_garbage_in_published_formats_makes_the_member_unreadable(bad: object) -> None:
    with pytest.raises(ZnodeError, match="formats"):
        MemberStatus.decode(with_field("member-active.json", formats=bad))


def test_new_member_status_publishes_formats_and_marker_epoch() -> None:
    m = MemberStatus(
        "mail1", "standby", True, None, "x", "a", False, "r", "t", 0, fence_epoch=7, seen_epoch=9
    )
    data = json.loads(encode(m))
    assert data["v"] == 1
    assert data["formats"] == list(formats.READ_FORMATS)
    assert (data["fence_epoch"], data["seen_epoch"]) == (7, 9)
    assert MemberStatus.decode(encode(m)) == m


def test_member_status_carries_the_commit_its_failoverd_was_built_from() -> None:
    m = MemberStatus(
        "mail1", "standby", True, None, "0.2.0", "a", False, "r", "t", 0, commit="3f2a9c1+dirty"
    )
    assert json.loads(encode(m))["commit"] == "3f2a9c1+dirty"
    assert MemberStatus.decode(encode(m)).commit == "3f2a9c1+dirty"
    with pytest.raises(ZnodeError, match="commit"):
        MemberStatus.decode(with_field("member-active.json", commit=7))


@dataclass(frozen=True)
class Published:
    formats: tuple[int, ...]


@pytest.fixture
def future(monkeypatch: pytest.MonkeyPatch) -> None:
    """A later release that reads and writes formats 1 and 2."""
    monkeypatch.setattr(formats, "READ_FORMATS", (1, 2))
    monkeypatch.setattr(formats, "WRITE_FORMATS", (1, 2))


def test_writers_write_format_1_while_any_member_reads_only_1(future: None) -> None:
    new, old = Published((1, 2)), Published((1,))
    assert write_format({"mail1": new, "mail2": new}, ["mail1", "mail2"]) == 2
    assert write_format({"mail1": new, "mail2": old}, ["mail1", "mail2"]) == 1


def test_a_member_of_the_previous_release_or_unreadable_or_absent_counts_as_format_1(
    future: None,
) -> None:
    new = Published((1, 2))
    previous = MemberStatus.decode(raw("member-standby.json"))  # publishes no formats
    assert write_format({"mail1": new, "mail2": previous}, ["mail1", "mail2"]) == 1
    assert write_format({"mail1": new, "mail2": None}, ["mail1", "mail2"]) == 1
    # mail2 is configured but not connected: it may come back running the old release.
    assert write_format({"mail1": new}, ["mail1", "mail2"]) == 1


def test_with_no_common_format_writers_fall_back_to_the_oldest(future: None) -> None:
    assert write_format({"mail1": Published((3,))}, ["mail1"]) == 1


def test_today_every_writer_writes_format_1() -> None:
    assert write_format({"mail1": Published((1,))}, ["mail1", "mail2"]) == 1
