"""The node's own record of the cluster (failoverd/membership.py): evidence that a
missing tree was lost, not never made, and the highest epoch it has seen."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from failoverd.marker import FenceMarker
from failoverd.membership import RECORD_FILE, MembershipRecord

CLUSTER = "/failoverd/mail-east"


def test_a_new_node_has_not_been_a_member(tmp_path: Path) -> None:
    record = MembershipRecord(str(tmp_path / "state"), CLUSTER)
    assert not record.has_been_member()
    assert record.seen_epoch == 0
    assert not (tmp_path / "state").exists()  # reading creates nothing


def test_noting_membership_survives_a_restart(tmp_path: Path) -> None:
    MembershipRecord(str(tmp_path), CLUSTER).note()
    again = MembershipRecord(str(tmp_path), CLUSTER)
    assert again.has_been_member()
    assert again.seen_epoch == 0


def test_the_highest_epoch_seen_only_goes_up_and_survives_a_restart(tmp_path: Path) -> None:
    record = MembershipRecord(str(tmp_path), CLUSTER)
    record.note(7)
    record.note(3)
    assert record.seen_epoch == 7
    assert MembershipRecord(str(tmp_path), CLUSTER).seen_epoch == 7


def test_noting_writes_only_on_a_change(tmp_path: Path) -> None:
    record = MembershipRecord(str(tmp_path), CLUSTER)
    record.note(5)
    path = tmp_path / RECORD_FILE
    os.utime(path, (0, 0))
    record.note(5)
    record.note(None)
    assert path.stat().st_mtime == 0


def test_a_fence_marker_alone_is_no_evidence_of_membership(tmp_path: Path) -> None:
    # It may be left from another cluster, or made up: a first start must not read
    # a brand-new cluster as lost because of it.
    FenceMarker(tmp_path).write(4, "test")
    assert not MembershipRecord(str(tmp_path), CLUSTER).has_been_member()


def test_another_clusters_record_is_no_evidence_and_is_replaced(tmp_path: Path) -> None:
    MembershipRecord(str(tmp_path), "/failoverd/other").note(9)
    record = MembershipRecord(str(tmp_path), CLUSTER)
    assert not record.has_been_member() and record.seen_epoch == 0
    record.note(2)
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
    record.note(3)  # logs membership_not_recorded, raises nothing
    assert record.seen_epoch == 0
    # Unreadable reads as "has been a member": a missing tree is then treated as lost.
    assert record.has_been_member()
