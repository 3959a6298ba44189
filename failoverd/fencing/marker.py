"""The local fence marker: proof on a fenced node that it was fenced.

When a peer fences this node (`failoverd fence-self --epoch E`, usually over ssh),
fence-self writes ``state_dir/fence.marker`` carrying E: "every epoch up to E has been
fenced here". Before starting *each* resource the daemon checks that no marker for
its own epoch or a later one exists, so a daemon that was frozen in the middle of a
promotion and resumed after the new active fenced it stops there instead of
starting Postfix next to the new active.

Why the flock on ``state_dir/fence.lock``: the daemon holds it while it checks the
marker *and* starts one resource (with `after:`, while it starts the resources in
parallel, each checking the marker right before its start: a flock is one per
process, node/transitions.py); fence-self holds it while it writes the marker
*and* stops the resources. A fence therefore never interleaves with a start:
either the start finished before the fence began (and the fence stops it), or the
start sees the marker and refuses. A daemon frozen mid-start keeps holding the
lock, so fence-self cannot get it, exits non-zero, the ssh fence fails within its
timeout and the fencing chain falls through to the next method (power fencing),
which is exactly what a frozen node needs.

An unreadable or garbage marker (or an unknown version) is the unsafe case: it
blocks every epoch, never counts as "no marker".

The active record, ``state_dir/active.json``, is the other direction: "this node
serves epoch N". The daemon writes it under the fence lock before its first resource
start and removes it when it starts demoting; fence-self (a separate process) reads
it under the same lock and refuses a fence from an older epoch, so a fencer that
woke up late cannot stop a node that has since become the legitimate active.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from failoverd.durable import sync_dir, write_atomically
from failoverd.observe import fastlog

log = fastlog.get_logger(__name__)  # no structlog in fence-self

MARKER_FILE = "fence.marker"
LOCK_FILE = "fence.lock"
ACTIVE_FILE = "active.json"
VERSION = 1
# How often held() retries a busy lock. Small: the daemon's hold is one resource
# start, and fence-self runs inside the peer's ssh timeout.
LOCK_POLL = 0.01


class MarkerUnreadable(ValueError):
    """The marker exists but cannot be trusted; treat as 'fenced at every epoch'."""


class ActiveRecordUnreadable(ValueError):
    """The active record exists but cannot be trusted (see fence_self for what that means)."""


class FenceMarker:
    def __init__(self, state_dir: str | Path):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / MARKER_FILE
        self.lock_path = self.state_dir / LOCK_FILE
        self.active_path = self.state_dir / ACTIVE_FILE

    def _read(self) -> int | None:
        """The marker's epoch, None if there is no marker; MarkerUnreadable otherwise."""
        return _read_epoch_record(self.path, "marker", MarkerUnreadable)

    def fenced_epoch(self) -> int | None:
        """The highest epoch fenced here so far; None if there is no marker.

        Raises MarkerUnreadable for a garbage marker: callers must not read that as None.
        """
        return self._read()

    def published_epoch(self) -> int | None:
        """The marker's epoch for the member status (the epoch floor after a loss of
        ZooKeeper's data); None without a marker or with an unreadable one, which
        blocks this node from serving anyway."""
        try:
            return self._read()
        except MarkerUnreadable:
            return None

    def blocks(self, epoch: int) -> bool:
        """True if this node must not serve `epoch`: a marker for it or a later one exists,
        or the marker is unreadable (unsafe case: blocks every epoch)."""
        try:
            fenced = self._read()
        except MarkerUnreadable as e:
            log.error("fence_marker_unreadable", error=str(e), blocks_epoch=epoch)
            return True
        return fenced is not None and fenced >= epoch

    def write(self, epoch: int, by: str) -> None:
        """Record that every epoch up to `epoch` is fenced; never lowers an existing marker.

        Atomic and durable: a crash leaves either the old or the new marker, never a torn
        one (tmp file + fsync + rename + fsync of the directory).
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        try:
            old = self._read()
        except MarkerUnreadable as e:
            # Replacing garbage with a real epoch is safe: every later promotion of this
            # node takes an epoch from ZooKeeper above the one being fenced now.
            log.warning("fence_marker_replaced_unreadable", error=str(e), epoch=epoch)
            old = None
        keep = max(epoch, old) if old is not None else epoch
        record = {"v": VERSION, "epoch": keep, "by": by, "time": datetime.now(UTC).isoformat()}
        self._write_durably(self.path, record)
        log.info("fence_marker_written", epoch=keep, requested=epoch, previous=old, by=by)

    def _write_durably(self, path: Path, record: dict[str, object]) -> None:
        """Atomic and durable, never through a planted symlink (failoverd/durable.py)."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(path, (json.dumps(record) + "\n").encode())

    def _sync_dir(self) -> None:
        sync_dir(self.state_dir)

    # -- the active record ------------------------------------------------------

    def record_active(self, epoch: int, lock_timeout: float = 1.0) -> None:
        """The daemon is about to start resources for `epoch`: from now on fence-self
        refuses fences from older epochs. Takes the fence lock itself (do not call it
        inside held()). Raises OSError or TimeoutError: a node that cannot record
        this should not start (its state dir is broken, fence-self could not write
        its marker either)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        record = {"v": VERSION, "epoch": epoch, "time": datetime.now(UTC).isoformat()}
        with self.held(timeout=lock_timeout):
            self._write_durably(self.active_path, record)
        log.info("active_recorded", epoch=epoch)

    def clear_active(self) -> None:
        """The daemon starts demoting: fences of any epoch are welcome again.

        Never raises, never waits: without the fence lock, because fence-self may
        hold it for as long as it takes to stop our resources, and a demotion must
        not wait for that. Nothing is lost: unlink is atomic, and a fence-self that
        read the record just before only refuses a fencer older than our epoch.
        A record left behind (an error here, a crash) does no harm either: it makes
        fence-self refuse only requests from epochs at or below this node's last
        promotion, which are stale, never legitimate."""
        try:
            self.active_path.unlink()
        except FileNotFoundError:
            return
        except OSError as e:
            log.error("active_record_not_cleared", path=str(self.active_path), error=str(e))
            return
        log.info("active_cleared")

    def active_epoch(self) -> int | None:
        """The epoch this node's daemon serves, None when it does not serve; call it
        under held(). Raises ActiveRecordUnreadable for anything that is not a valid
        record: the caller decides what the unsafe case is."""
        return _read_epoch_record(self.active_path, "record", ActiveRecordUnreadable)

    @contextlib.contextmanager
    def held(self, timeout: float) -> Iterator[HeldLock]:
        """Hold the exclusive fence lock; TimeoutError if it stays busy for `timeout` s.
        Released at the end of the block unless taken out of it with HeldLock.keep()."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_NOFOLLOW: a symlink planted as the lock file must not make root create or
        # lock some other file. O_CLOEXEC: a resource started under the lock (a forked
        # mail server) must not inherit the descriptor, or it would hold the lock, and
        # block every fence, forever.
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.lock_path, flags, 0o600)
        lock = HeldLock(fd)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(
                            f"fence lock {self.lock_path} still held after {timeout:g}s"
                        ) from None
                    time.sleep(LOCK_POLL)
            try:
                yield lock
            finally:
                if lock.fd is not None:
                    fcntl.flock(lock.fd, fcntl.LOCK_UN)
        finally:
            if lock.fd is not None:
                os.close(lock.fd)


class HeldLock:
    """The fence lock inside FenceMarker.held(). `keep()` takes the locked descriptor
    out of the block: held() then neither unlocks nor closes it, and the lock stays
    taken, without an instant's gap, until its new owner closes it (a start given up
    on hands it to failoverd/resources/abandoned.py this way)."""

    def __init__(self, fd: int):
        self.fd: int | None = fd

    def keep(self) -> int:
        fd, self.fd = self.fd, None
        if fd is None:
            raise RuntimeError("the fence lock was already taken out of held()")
        return fd


def marker_ahead(marker: FenceMarker, zookeeper_epoch: int) -> int | None:
    """The marker's epoch if it exceeds ZooKeeper's epoch + 1, else None.

    A new active fences with epoch E+1 *before* it writes E+1 into the breadcrumb,
    so a marker one ahead is normal for a moment. Further ahead, the marker names
    an epoch ZooKeeper never issued: its data was lost or rolled back, or
    someone holding the fence key ran fence-self with a made-up epoch."""
    try:
        fenced = marker.fenced_epoch()
    except MarkerUnreadable:
        return None  # reported by blocks() on every check
    return fenced if fenced is not None and fenced > zookeeper_epoch + 1 else None


def _read_epoch_record(path: Path, what: str, unreadable: type[ValueError]) -> int | None:
    """A `{"v": 1, "epoch": N}` file in the state dir: its epoch, None when it does
    not exist, `unreadable` for anything else. O_NOFOLLOW and a bounded read: a
    planted symlink or a huge file is unreadable, never followed or slurped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            raw = f.read(4096)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise unreadable(f"{path}: {e}") from e
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise unreadable(f"{path}: not JSON: {e}") from e
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise unreadable(f"{path}: not a version {VERSION} {what}")
    epoch = data.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise unreadable(f"{path}: epoch {epoch!r} is not a non-negative integer")
    return epoch
