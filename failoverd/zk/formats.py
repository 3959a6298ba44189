"""The znode format rule: how releases that write different formats share a cluster
during a rolling upgrade (docs/upgrading.md, "Old and new daemons in one cluster").

Every znode is a JSON object with a format number `v`.

* **Readers** accept every format they know (READ_FORMATS) and ignore fields they do
  not know. A new field therefore needs no new format, as long as an old reader
  that ignores it still acts safely (a new *optional* field). A format not in
  READ_FORMATS is the unsafe case, exactly like garbage: an unreadable breadcrumb
  means "fence every peer".
* **Writers** write the newest format that *every* member reads: each member
  publishes the formats it reads (`formats` in its member status). A member that
  publishes none (a release before this rule), whose status is unreadable, or that
  is configured but not connected (it may come back running the old release) is
  taken to read only format 1. So a new format is written only once every node runs
  a release that reads it, and an old node never sees a breadcrumb it would have to
  treat as garbage.

One deliberate exception, where an old reader *should* fail safe: the epoch floor
that `failoverctl restore` writes (znodes.Breadcrumb.floor, `clean` null: previous
active unknown). Releases before it cannot decode it; for them it is an unreadable
breadcrumb, which means what the floor means: fence every peer. (The restore keeps
the znode's data version at or above the floor's epoch, so their stand-in for the
epoch they cannot read still goes above it.) No form a release before it can read
would do: they read a breadcrumb naming nobody as "nobody was ever active".

Only format 1 exists today, so every writer writes 1; the rule is what lets a
later release introduce format 2 without a flag day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

# Formats this release reads, and the subset it can write (oldest first).
READ_FORMATS: tuple[int, ...] = (1,)
WRITE_FORMATS: tuple[int, ...] = (1,)
# What a member that publishes nothing is assumed to read: the releases before this
# rule read exactly format 1.
ASSUMED_FORMATS: tuple[int, ...] = (1,)


class _Publishes(Protocol):
    @property
    def formats(self) -> Sequence[int]: ...


def readable(v: object) -> bool:
    """True for a format number this release reads (an int, never a bool)."""
    return isinstance(v, int) and not isinstance(v, bool) and v in READ_FORMATS


def write_format(members: Mapping[str, _Publishes | None], configured: Iterable[str]) -> int:
    """The newest format we can write that every member reads.

    `members` are the statuses in ZooKeeper (None: unreadable); `configured` are the
    names in our config, which count even while disconnected."""
    common = set(WRITE_FORMATS)
    for name in {*members, *configured}:
        status = members.get(name)
        common &= set(status.formats if status is not None else ASSUMED_FORMATS)
    # No common format means a member that reads none of ours: write the oldest, which
    # every release since format 1 reads; that member then fails safe (it fences).
    return max(common, default=WRITE_FORMATS[0])
