"""Files that root writes so a crash leaves the old one or the new one, never half
of one, and so nobody else can redirect them: the fence marker and the active
record, the started-resources record, failoverctl's backups.

The temp file is made by mkstemp beside the target (an unpredictable name,
O_EXCL: a symlink planted there is never followed; the rename stays in one file
system), mode 0600 whatever the umask, written, fsynced and renamed over the
target; then the directory is fsynced, so the rename itself survives a crash.

A leaf: `failoverd fence-self` imports it through the marker, so it imports
nothing of ours and nothing heavy.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path | str, data: bytes) -> None:
    """Replace `path` with `data`, durably. Raises OSError; the target is untouched then."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_dir(path.parent)


def sync_dir(folder: Path | str) -> None:
    """Make a rename or unlink in `folder` survive a crash."""
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
