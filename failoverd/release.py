"""Which failoverd this is: its version and the commit it was built from.

The version alone does not tell two builds of one release apart, and in a rolling
upgrade the operator must see which node runs what (`--version`, the member status,
`failoverctl status`). The commit comes from, in this order:

* `failoverd/BUILD_COMMIT`, which the package build writes next to this module:
  an installed package has no git history to ask;
* git, when the package runs from a checkout (the package's parent directory is the
  checkout's root), with "+dirty" when tracked files differ from that commit;
* neither: unknown (""), printed as "unknown". A package that merely lies somewhere
  below an unrelated checkout (a venv inside one) does not take its commit.

Found once per process, lazily: `failoverd fence-self` and the daemon's start never
wait for git unless they ask for the commit, and git gets a short timeout.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

from failoverd import __version__

PACKAGE = Path(__file__).resolve().parent
BUILD_COMMIT = PACKAGE / "BUILD_COMMIT"
# A hung git (a network file system, a huge index) must not hold up --version or the
# daemon's first member status for longer than this, per call.
GIT_TIMEOUT = 3.0
# A commit as git abbreviates it, optionally marked dirty; anything else in
# BUILD_COMMIT is not printed (it ends up in terminals and in ZooKeeper).
_COMMIT = re.compile(r"[0-9a-f]{7,40}(\+dirty)?")


@cache
def commit() -> str:
    """The commit this package was built from, or "" when nobody can say."""
    try:
        written = BUILD_COMMIT.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return _commit_from_git(PACKAGE.parent)
    if not _COMMIT.fullmatch(written):
        return ""
    # The build writes the full hash; shown, as git shows it, abbreviated.
    digest, dirty = written.partition("+")[::2]
    return digest[:7] + ("+" + dirty if dirty else "")


def describe() -> str:
    """What `--version` prints: `failoverd 0.2.0 (commit 3f2a9c1)`."""
    return f"failoverd {__version__} (commit {commit() or 'unknown'})"


def _commit_from_git(checkout: Path) -> str:
    head = _git(checkout, "rev-parse", "--show-toplevel", "--short", "HEAD")
    if head is None or len(head.splitlines()) != 2:
        return ""
    top, short = head.splitlines()
    if Path(top).resolve() != checkout.resolve() or not _COMMIT.fullmatch(short):
        return ""  # not our checkout: a package installed below somebody else's
    # --no-optional-locks: only look; never rewrite the checkout's index (as root).
    changes = _git(checkout, "--no-optional-locks", "status", "--porcelain", "-uno")
    if changes is None:
        return ""
    return short + ("+dirty" if changes.strip() else "")


def _git(checkout: Path, *args: str) -> str | None:
    """git's output, None when git is missing, fails or takes too long."""
    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None
