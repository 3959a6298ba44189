"""How high an epoch fence-self accepts: not far above what this node has seen.

`fence-self --epoch N` writes a marker that refuses every epoch up to N here, and
the node publishes it as its `fence_epoch`, a floor for every later epoch after a
loss of ZooKeeper's data. The forced ssh command accepts only the form, so whoever
holds the fence key could name any N below 2^53: this node could then never serve
again, and before plan_epoch ignored such floors, every later epoch went to 2^53,
which no reader decodes.

A legitimate fencer took over at N+1 = one above the highest epoch in ZooKeeper,
which this node has seen (its daemon remembers the highest epoch it saw used, in
the membership record of node/membership.py) unless it was down while the cluster
took over again and again: more than EPOCH_FLOOR_SLACK (a million) times is never
the case. So an N more than that above the highest of its marker, its active record
and its remembered epoch, or one at the epoch ceiling, is refused, and nothing is
stopped: the fencer falls through to its next method (power), which needs no trust
in a number.

Only the standard library and zk/znodes' constants: fence-self imports this.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from failoverd.zk.znodes import EPOCH_CEILING, EPOCH_FLOOR_SLACK

# The membership record (node/membership.py), in the state dir.
RECORD_FILE = "cluster.joined"


def remembered_epoch(state_dir: str | Path, cluster_path: str) -> int:
    """The highest epoch this node's daemon remembers seeing used; 0 when there is
    no record, an unreadable one or another cluster's (a bound, not a floor: 0 is
    the strict side)."""
    try:
        fd = os.open(Path(state_dir) / RECORD_FILE, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(4096))
    except (OSError, ValueError):
        return 0
    if not isinstance(data, dict) or data.get("cluster_path") != cluster_path:
        return 0
    epoch = data.get("seen_epoch")
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch > 0 else 0


def refusal(epoch: int, seen: list[int | None]) -> str:
    """Why a fence at `epoch` is refused ("" when it is not); `seen`: the epochs this
    node knows of (its marker, its active record, its remembered epoch)."""
    if epoch + 1 >= EPOCH_CEILING:
        return (
            f"epoch {epoch} is at the epoch ceiling ({EPOCH_CEILING}): no fencer takes over there"
        )
    highest = max((e for e in seen if e is not None), default=0)
    if epoch > highest + EPOCH_FLOOR_SLACK:
        return (
            f"epoch {epoch} is more than {EPOCH_FLOOR_SLACK} above the highest this node has "
            f"seen ({highest}): no takeover ever used it, a made-up epoch"
        )
    return ""
