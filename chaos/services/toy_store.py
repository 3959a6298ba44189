"""The shared mail store: one file on the common filesystem both nodes reach.

It stands for the SAN/DRBD volume that stays reachable when the network splits,
which is exactly why two actives would corrupt it. Every write attempt is one
JSON line `{msg, node, epoch, t, accepted, stale}` appended under an exclusive
flock and fsynced *before* the service answers 250, so the file order is the
order in which writes were accepted and an acknowledged message is durable.

A stale epoch (lower than the highest seen) is recorded too — the checker must
see it. With `fenced=True` (defence in depth, like a storage array honouring a
fencing token) a stale write is rejected: recorded with accepted=false, and the
service answers 451.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

MESSAGES = "messages.jsonl"
LOCK = ".lock"
# The store's filesystem is full while this file exists in it (scenario 31): every
# write fails with ENOSPC before a byte of it lands, as a full disk would.
FULL = ".full"


class StoreFull(OSError):
    """No space left on the shared store: the message was not stored."""


class Store:
    def __init__(self, root: Path, fenced: bool = False):
        self.root = root
        self.fenced = fenced

    @property
    def path(self) -> Path:
        return self.root / MESSAGES

    def available(self) -> bool:
        """The 'mount' is there and writable (what a real node's health check would test)."""
        return self.root.is_dir() and os.access(self.root, os.W_OK)

    def full(self) -> bool:
        return (self.root / FULL).exists()

    def write(self, msg: int | None, node: str, epoch: int | None) -> dict[str, Any]:
        """Record one message; return the record (its `accepted` says whether it counts)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.full():
            raise StoreFull(errno.ENOSPC, "No space left on device", str(self.path))
        lock = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            highest = _read_highest(lock)
            stale = epoch is None or (highest is not None and epoch < highest)
            accepted = not (self.fenced and stale)
            record = {
                "msg": msg,
                "node": node,
                "epoch": epoch,
                "t": time.time(),
                "mono": time.monotonic(),
                "accepted": accepted,
                "stale": stale,
            }
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            if accepted and epoch is not None and (highest is None or epoch > highest):
                os.lseek(lock, 0, os.SEEK_SET)
                os.ftruncate(lock, 0)
                os.write(lock, str(epoch).encode())
            return record
        finally:
            os.close(lock)  # releases the flock


def _read_highest(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
