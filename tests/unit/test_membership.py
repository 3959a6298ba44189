"""The node's own record of the cluster (failoverd/node/membership.py): evidence that a
missing tree was lost, not never made, and the highest epoch it has seen."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from failoverd.fencing.marker import FenceMarker
from failoverd.node.membership import RECORD_FILE, MembershipRecord

CLUSTER = "/failoverd/mail-east"


def test_a_new_node_has_not_been_a_member(tmp_path: Path) -> None:
    record = MembershipRecord(str(tmp_path / "state"), CLUSTER)
    assert not record.has_been_member()
    assert record.seen_epoch == 0
    assert not (tmp_path / "state").exists()  # reading creates nothing


def test_joining_survives_a_restart(tmp_path: Path) -> None:
    MembershipRecord(str(tmp_path), CLUSTER).joined()
    again = MembershipRecord(str(tmp_path), CLUSTER)
    assert again.has_been_member()
    assert again.seen_epoch == 0


def test_the_highest_epoch_seen_only_goes_up_and_survives_a_restart(tmp_path: Path) -> None:
    record = MembershipRecord(str(tmp_path), CLUSTER)
    record.joined()
    record.saw(7)
    record.saw(3)
    assert record.seen_epoch == 7
    assert MembershipRecord(str(tmp_path), CLUSTER).seen_epoch == 7


def test_recording_writes_only_on_a_change(tmp_path: Path) -> None:
    record = MembershipRecord(str(tmp_path), CLUSTER)
    record.joined()
    record.saw(5)
    path = tmp_path / RECORD_FILE
    os.utime(path, (0, 0))
    record.saw(5)
    record.joined()
    assert path.stat().st_mtime == 0


def test_an_epoch_seen_before_joining_is_no_evidence_of_membership(tmp_path: Path) -> None:
    # The daemon reports its status before its first session has seen the tree: that
    # must not make a brand-new cluster's missing tree read as lost (found by
    # test_sigterm_on_active_hands_over_cleanly_without_fencing: a needless fence).
    record = MembershipRecord(str(tmp_path), CLUSTER)
    record.saw(4)
    assert not record.has_been_member()
    assert not (tmp_path / RECORD_FILE).exists()
    record.joined()  # ...and is kept once it has joined
    assert MembershipRecord(str(tmp_path), CLUSTER).seen_epoch == 4


def test_a_fence_marker_alone_is_no_evidence_of_membership(tmp_path: Path) -> None:
    # It may be left from another cluster, or made up: a first start must not read
    # a brand-new cluster as lost because of it.
    FenceMarker(tmp_path).write(4, "test")
    assert not MembershipRecord(str(tmp_path), CLUSTER).has_been_member()


def test_another_clusters_record_is_no_evidence_and_is_replaced(tmp_path: Path) -> None:
    other = MembershipRecord(str(tmp_path), "/failoverd/other")
    other.joined()
    other.saw(9)
    record = MembershipRecord(str(tmp_path), CLUSTER)
    assert not record.has_been_member() and record.seen_epoch == 0
    record.joined()
    record.saw(2)
    data = json.loads((tmp_path / RECORD_FILE).read_text())
    assert (data["cluster_path"], data["seen_epoch"]) == (CLUSTER, 2)


@pytest.mark.parametrize(
    "content", ["garbage", '{"cluster_path": "/failoverd/mail-east", "seen_epoch": true}']
)
def test_an_unreadable_record_counts_as_membership(tmp_path: Path, content: str) -> None:
    # The unsafe reading: a missing tree is then treated as lost (fence every peer).
    (tmp_path / RECORD_FILE).write_text(content)
    record = MembershipRecord(str(tmp_path), CLUSTER)
    assert record.has_been_member()
    assert record.seen_epoch == 0


def test_an_unwritable_state_dir_does_not_stop_the_daemon(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    record = MembershipRecord(str(blocker / "state"), CLUSTER)
    record.joined()  # logs membership_not_recorded, raises nothing
    record.saw(3)
    # Unreadable reads as "has been a member": a missing tree is then treated as lost.
    assert record.has_been_member()
