"""The record of abandoned operations in the state dir (failoverd/resources/abandoned.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from failoverd.resources.abandoned import AbandonedWork, tagged


def test_abandoned_operations_survive_a_restart(tmp_path: Path) -> None:
    record = tmp_path / "abandoned.json"
    tag, _ = tagged({})
    AbandonedWork(tmp_path / "fence.lock", record).add(tag, "command x start", 30.0, None)
    again = AbandonedWork(tmp_path / "fence.lock", record)
    assert again.pending and set(again.ops) == {tag}
    assert "command x start" in again.reason()
    assert again.ops[tag].timeout == 30.0


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00",
        b"{}",
        b'{"v": 1, "ops": [{"tag": "../x", "what": "a", "timeout": 1}]}',
        b'{"v": 1, "ops": [{"tag": "0123456789abcdef", "what": "a", "timeout": 1e300}]}',
        b"[" * 100000,
    ],
)
def test_an_unreadable_record_is_the_unsafe_case(tmp_path: Path, garbage: bytes) -> None:
    record = tmp_path / "abandoned.json"
    record.write_bytes(garbage)
    work = AbandonedWork(tmp_path / "fence.lock", record)
    assert work.pending and "unreadable" in work.reason()


def test_no_record_means_nothing_abandoned(tmp_path: Path) -> None:
    assert not AbandonedWork(tmp_path / "fence.lock", tmp_path / "abandoned.json").pending
