"""The node's own record that it has been a member of a cluster, kept in the state dir.

Why: a cluster's tree that does not exist in ZooKeeper means one of two things.
Either the cluster is brand new, and the first daemon creates the tree with a
clean breadcrumb naming nobody, so the first active fences nobody. Or ZooKeeper
lost its data (README, "ZooKeeper data loss"), and then "nobody was ever active"
is a lie: the last active may still be serving, frozen. ZooKeeper itself cannot
tell the two apart any more; the nodes can. A daemon that finds this record
recreates the tree *without* a breadcrumb, which every winner reads as "previous
active unknown: fence every peer" (DESIGN.md §3).

A fence marker is evidence too: only a member is ever fenced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

from failoverd.marker import MARKER_FILE

log = structlog.get_logger(__name__)

RECORD_FILE = "cluster.joined"


def _path(state_dir: str) -> Path:
    return Path(state_dir) / RECORD_FILE


def has_been_member(state_dir: str, cluster_path: str) -> bool:
    """True if this node has seen the cluster's tree before (or was fenced in it)."""
    if (Path(state_dir) / MARKER_FILE).exists():
        return True
    try:
        data = json.loads(_path(state_dir).read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # unreadable: err on the side of "the tree was lost"
    return not isinstance(data, dict) or data.get("cluster_path") == cluster_path


def remember(state_dir: str, cluster_path: str) -> None:
    """Record membership once; a failure is logged, never fatal (it only weakens the
    data-loss guard, not the lease or fencing)."""
    path = _path(state_dir)
    try:
        if json.loads(path.read_text()).get("cluster_path") == cluster_path:
            return
    except (OSError, ValueError, AttributeError):
        pass  # missing, unreadable or another cluster's: (re)write it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{RECORD_FILE}.tmp.{os.getpid()}")
        tmp.write_text(json.dumps({"v": 1, "cluster_path": cluster_path}) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        log.warning("membership_not_recorded", path=str(path), error=str(e))
