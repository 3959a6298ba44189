"""What `failoverctl restore` may put back of a breadcrumb: only the epoch floor.

A backup names whoever was active when it was taken; by the time it is restored
another node may have taken over and may still be serving. A missing or unreadable
breadcrumb means "previous active unknown: fence every peer", and a restore must
never narrow that to one node. So it writes a breadcrumb that names nobody and is
neither clean nor unclean ("previous active unknown, every epoch so far <= N"):
the next active fences every peer and takes an epoch above N. Release 0.1.0 (and
every release before this form) cannot decode it, which for them is the same
"fence every peer"."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from failoverd.cli.backup import restore_backup
from failoverd.node.decision import next_epoch, plan_fencing
from failoverd.zk.znodes import Breadcrumb, Control, ZnodeError, encode
from tests.unit.test_formats import old_release

PEERS = ("mail2", "mail3")
SINCE = "2026-12-01T10:00:00.000Z"
FLOOR_BYTES = b'{"clean":null,"epoch":5,"node":null,"since":"2026-12-01T10:00:00.000Z","v":1}'


# -- the form ------------------------------------------------------------------------


def test_an_epoch_floor_names_nobody_is_neither_clean_nor_unclean_and_reads_back() -> None:
    crumb = Breadcrumb.decode(FLOOR_BYTES)
    assert (crumb.node, crumb.epoch, crumb.clean) == (None, 5, None)
    assert crumb.previous_unknown
    assert encode(crumb) == FLOOR_BYTES
    assert Breadcrumb.floor(5, SINCE) == crumb


def test_the_initial_breadcrumb_and_a_named_one_are_not_floors() -> None:
    assert not Breadcrumb(None, 0, SINCE, True).previous_unknown
    assert not Breadcrumb("mail1", 3, SINCE, False).previous_unknown


@pytest.mark.parametrize(
    "body",
    [
        {"node": "mail1", "epoch": 5, "since": SINCE, "clean": None},  # names a node: says
        {"node": None, "epoch": 5, "since": SINCE},  # no `clean` at all
    ],
)
def test_anything_else_without_clean_is_unreadable(body: dict[str, Any]) -> None:
    with pytest.raises(ZnodeError):
        Breadcrumb.decode(json.dumps({"v": 1, **body}).encode())


def test_release_0_1_0_cannot_read_the_floor_so_it_fences_every_peer() -> None:
    old = old_release()
    with pytest.raises(old.ZnodeError):
        old.Breadcrumb.decode(FLOOR_BYTES)
    # What 0.1.0's read_breadcrumb makes of it (readable False), with its own
    # plan_fencing, identical to today's for this case.
    assert plan_fencing(None, False, "mail1", PEERS).targets == PEERS


# -- what the next takeover makes of it -------------------------------------------------


def test_a_floor_makes_the_next_active_fence_every_peer() -> None:
    plan = plan_fencing(Breadcrumb.decode(FLOOR_BYTES), True, "mail1", PEERS)
    assert plan.targets == PEERS and plan.possible
    assert "previous active unknown" in plan.reason


def test_a_not_clean_breadcrumb_naming_nobody_is_a_floor_too() -> None:
    # What restore wrote over a missing breadcrumb before the floor form, when the
    # backup held a fresh cluster's initial one: never a "nobody was active".
    legacy = Breadcrumb(None, 0, SINCE, False)
    assert plan_fencing(legacy, True, "mail1", PEERS).targets == PEERS


def test_the_next_epoch_is_above_the_floor_and_above_every_other_epoch_seen() -> None:
    crumb = Breadcrumb.decode(FLOOR_BYTES)
    assert next_epoch(crumb, True, 0) == 6
    assert next_epoch(crumb, True, 0, floor=8) == 9  # e.g. a member's seen_epoch


# -- restore ---------------------------------------------------------------------------


@dataclass
class FakeAdmin:
    """The AdminCoordinator calls restore_backup makes; `crumb` is what is stored."""

    crumb: bytes | None = None
    written: list[Breadcrumb] = field(default_factory=list)

    def ensure_tree(self, timeout: float, lost_if_missing: bool = False) -> None:
        pass

    def connected_members_and_lock(self, timeout: float) -> tuple[list[str], bool]:
        return [], False

    def read_breadcrumb_bytes(self, timeout: float) -> tuple[bytes | None, int | None]:
        return self.crumb, None if self.crumb is None else 3

    def restore_breadcrumb(self, crumb: Breadcrumb, version: int | None, timeout: float) -> int:
        self.written.append(crumb)
        self.crumb = encode(crumb)
        return crumb.epoch  # the data version it reached

    def read_control(self, timeout: float) -> tuple[Control, int]:
        return Control(), 0

    def write_control(self, control: Control, version: int, timeout: float) -> None:
        pass

    def restore_history(self, entries: Any, timeout: float) -> int:
        return len(list(entries))


def backup_of(crumb: Breadcrumb) -> dict[str, Any]:
    return {"active": {"text": encode(crumb).decode()}, "control": None, "history": []}


MAIL1_AT_1 = Breadcrumb("mail1", 1, SINCE, False)


def restored(admin: FakeAdmin, crumb: Breadcrumb = MAIL1_AT_1) -> str:
    said = restore_backup(admin, backup_of(crumb), force=False, timeout=1.0)  # type: ignore[arg-type]
    return said[0]


def test_restore_over_a_missing_breadcrumb_writes_only_the_epoch_floor() -> None:
    admin = FakeAdmin()
    line = restored(admin)
    assert [(c.node, c.epoch, c.clean) for c in admin.written] == [(None, 1, None)]
    assert line.startswith("breadcrumb: restored the epoch floor 1, not who was active")
    assert "mail1" not in line.split("(")[0]
    assert "fences every peer" in line


@pytest.mark.parametrize(
    "existing",
    [
        Breadcrumb("mail2", 1, SINCE, False),  # another node, at a lower epoch
        Breadcrumb("mail2", 0, SINCE, True),
        Breadcrumb(None, 0, SINCE, True),  # a tree recreated as if new
    ],
)
def test_restore_over_an_older_breadcrumb_writes_only_the_floor(existing: Breadcrumb) -> None:
    admin = FakeAdmin(crumb=encode(existing))
    restored(admin, Breadcrumb("mail1", 4, SINCE, True))
    assert [(c.node, c.epoch, c.clean) for c in admin.written] == [(None, 4, None)]


def test_restore_of_a_fresh_clusters_backup_still_fences_every_peer() -> None:
    admin = FakeAdmin()
    restored(admin, Breadcrumb(None, 0, SINCE, True))
    crumb = Breadcrumb.decode(admin.crumb)
    assert plan_fencing(crumb, True, "mail1", PEERS).targets == PEERS


def test_restore_leaves_an_unreadable_or_newer_breadcrumb_alone() -> None:
    garbled = FakeAdmin(crumb=b"\xff garbled")
    assert "unreadable" in restored(garbled)
    newer = FakeAdmin(crumb=encode(Breadcrumb("mail2", 2, SINCE, False)))
    assert "kept the existing one" in restored(newer)
    assert garbled.written == newer.written == []
