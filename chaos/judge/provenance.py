"""Which source a run was made on: the git commit of the checkout, recorded in every
scenario.json and results.json so `python -m chaos table` can combine runs made at
different times and say which code they judged."""

from __future__ import annotations

import functools
import subprocess

from tests.support.checkout import REPO


@functools.cache
def source_commit() -> str | None:
    """The checkout's commit (12 hex digits), '+dirty' when tracked files differ from it;
    None outside a git checkout (e.g. an unpacked release)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
