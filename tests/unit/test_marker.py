"""The local fence marker, its lock, and the strict parsing of the ssh forced command."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from failoverd.fencing.fence_self import parse_ssh_original_command
from failoverd.fencing.marker import FenceMarker, MarkerUnreadable

# ---------------------------------------------------------------------------
# the marker
# ---------------------------------------------------------------------------


def test_no_marker_blocks_nothing(tmp_path: Path) -> None:
    m = FenceMarker(tmp_path / "state")
    assert m.fenced_epoch() is None
    assert not m.blocks(0)
    assert not m.blocks(sys.maxsize)


def test_marker_blocks_its_epoch_and_every_earlier_one(tmp_path: Path) -> None:
    m = FenceMarker(tmp_path)
    m.write(6, by="mail1")
    assert m.fenced_epoch() == 6
    assert m.blocks(1) and m.blocks(6)
    assert not m.blocks(7)
    # The daemon's "any epoch" probe is blocked only by an unreadable marker.
    assert not m.blocks(sys.maxsize)


def test_marker_keeps_the_highest_epoch(tmp_path: Path) -> None:
    m = FenceMarker(tmp_path)
    m.write(9, by="mail1")
    m.write(4, by="mail3")  # a late, stale fencer must not lower it
    assert m.fenced_epoch() == 9
    m.write(12, by="mail3")
    assert m.fenced_epoch() == 12


def test_marker_file_is_versioned_json_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    m = FenceMarker(tmp_path)
    m.write(3, by="fence-self from 10.0.0.11")
    data = json.loads(m.path.read_text())
    assert data["v"] == 1 and data["epoch"] == 3 and data["by"] == "fence-self from 10.0.0.11"
    assert data["time"].endswith("+00:00")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fence.marker"]


def test_write_creates_the_state_dir(tmp_path: Path) -> None:
    m = FenceMarker(tmp_path / "a" / "b")
    m.write(1, by="x")
    assert m.fenced_epoch() == 1


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\xff garbage",
        b"{not json",
        b"[]",
        b'{"epoch": 5}',  # no version
        b'{"v": 2, "epoch": 5}',  # unknown version
        b'{"v": 1}',
        b'{"v": 1, "epoch": "5"}',
        b'{"v": 1, "epoch": -1}',
        b'{"v": 1, "epoch": true}',
        b'{"v": 1, "epoch": 5.5}',
    ],
)
def test_garbage_marker_blocks_every_epoch(tmp_path: Path, content: bytes) -> None:
    m = FenceMarker(tmp_path)
    m.path.write_bytes(content)
    assert m.blocks(0)
    assert m.blocks(sys.maxsize)
    with pytest.raises(MarkerUnreadable):
        m.fenced_epoch()


def test_marker_that_cannot_be_read_blocks_every_epoch(tmp_path: Path) -> None:
    m = FenceMarker(tmp_path)
    m.path.mkdir()  # reading it fails with IsADirectoryError
    assert m.blocks(sys.maxsize)


def test_a_fence_replaces_a_garbage_marker(tmp_path: Path) -> None:
    m = FenceMarker(tmp_path)
    m.path.write_bytes(b"garbage")
    m.write(5, by="mail1")
    assert m.fenced_epoch() == 5


def test_negative_epoch_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FenceMarker(tmp_path).write(-1, by="x")


# ---------------------------------------------------------------------------
# the fence lock
# ---------------------------------------------------------------------------


def test_fence_lock_excludes_a_second_holder_in_another_thread(tmp_path: Path) -> None:
    m = FenceMarker(tmp_path)
    got_it, release = threading.Event(), threading.Event()

    def daemon_mid_start() -> None:
        with m.held(timeout=1.0):
            got_it.set()
            release.wait(5)

    t = threading.Thread(target=daemon_mid_start)
    t.start()
    try:
        assert got_it.wait(5)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError), m.held(timeout=0.2):
            pass
        assert 0.2 <= time.monotonic() - t0 < 0.5
    finally:
        release.set()
        t.join()
    with m.held(timeout=0.2):  # free again once released
        pass


def test_fence_lock_excludes_another_process_until_it_exits(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from failoverd.fencing.marker import FenceMarker\n"
            "with FenceMarker(sys.argv[1]).held(timeout=1.0):\n"
            "    print('held', flush=True); time.sleep(0.5)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError), FenceMarker(tmp_path).held(timeout=0.05):
            pass
        # A waiter polls: it gets the lock once the holder lets go, within its timeout.
        with FenceMarker(tmp_path).held(timeout=5.0):
            assert holder.wait(5) == 0
    finally:
        holder.kill()
        holder.wait()


def test_fence_lock_is_not_inherited_by_children(tmp_path: Path) -> None:
    # A resource started under the lock (a forked server) must not keep holding it.
    m = FenceMarker(tmp_path)
    with m.held(timeout=1.0):
        child = subprocess.Popen(["sleep", "5"])
    try:
        with m.held(timeout=0.2):
            pass
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------------------
# SSH_ORIGINAL_COMMAND: only two commands get through
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("fence-self --epoch 7", (7, False)),
        ("fence-self --epoch 0", (0, False)),
        ("  fence-self   --epoch 12 ", (12, False)),
        ("fence-self --dry-run", (None, True)),
    ],
)
def test_ssh_original_command_accepts_a_fence_or_a_dry_run(
    command: str, expected: tuple[int | None, bool]
) -> None:
    assert parse_ssh_original_command(command) == expected


@pytest.mark.parametrize(
    "command",
    [
        None,
        "",
        "fence-self",
        "fence-self --epoch",
        "fence-self --epoch -1",
        "fence-self --epoch 7x",
        "fence-self --epoch=7",
        "fence-self --epoch 7 --dry-run",
        "fence-self --dry-run --epoch 7",
        "fence-self --epoch 7; rm -rf /",
        "fence-self --epoch 7 && sh",
        "sh -c 'fence-self --epoch 7'",
        "fence-self --epoch 99999999999999999999999",
        "FENCE-SELF --dry-run",
        "scp -t /etc/failoverd",
    ],
)
def test_ssh_original_command_refuses_everything_else(command: str | None) -> None:
    with pytest.raises(ValueError):
        parse_ssh_original_command(command)
