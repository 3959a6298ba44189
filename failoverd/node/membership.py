"""The node's own record of the cluster, kept in its state dir: that it has been a
member, and the highest epoch it has seen used. What ZooKeeper forgets when it
loses its data (docs/design.md, "When ZooKeeper loses its data"), the nodes still know.

* **Member.** A cluster's tree that does not exist in ZooKeeper means one of two
  things. Either the cluster is brand new, and the first daemon creates the tree
  with a clean breadcrumb naming nobody, so the first active fences nobody. Or
  ZooKeeper lost its data, and then "nobody was ever active" is a lie: the last
  active may still be serving, frozen. A daemon that has been a member recreates
  the tree *without* a breadcrumb, which every winner reads as "previous active
  unknown: fence every peer". Only this record counts: a fence
  marker alone may be left from another cluster or made up (preflight's
  fence_marker_ahead alert is about that case).
* **Highest epoch seen** (its own, the breadcrumb's, its peers'): published in the
  member status (`seen_epoch`), so after a loss the next epoch starts above the
  last active's even when that node is down or frozen, as long as one connected
  node watched it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

from failoverd.fencing.epoch_bound import RECORD_FILE

log = structlog.get_logger(__name__)


class MembershipRecord:
    def __init__(self, state_dir: str, cluster_path: str):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / RECORD_FILE
        self.cluster_path = cluster_path
        self.found, self.seen_epoch = self._read()

    def _read(self) -> tuple[bool, int]:
        """(evidence of membership, highest epoch recorded)."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return False, 0
        except (OSError, ValueError):
            return True, 0  # unreadable: err on the side of "the tree was lost"
        if not isinstance(data, dict) or data.get("cluster_path") != self.cluster_path:
            return not isinstance(data, dict), 0  # another cluster's record: not ours
        epoch = data.get("seen_epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0:
            return True, epoch
        return True, 0

    def has_been_member(self) -> bool:
        return self.found

    def joined(self) -> None:
        """This node has seen the cluster's tree (call after ensure_tree succeeded):
        from now on a missing tree reads as lost."""
        if not (self.found and self.path.exists()):
            self._write()

    def saw(self, epoch: int) -> None:
        """An epoch in use was seen; remembered only once this node has joined (the
        record's existence is the evidence of membership, so nothing before that
        may create it)."""
        if epoch <= self.seen_epoch:
            return
        self.seen_epoch = epoch
        if self.found:
            self._write()

    def _write(self) -> None:
        """A failure is logged, never fatal: it weakens only the data-loss guard, not
        the lease or fencing."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{RECORD_FILE}.tmp.{os.getpid()}")
            record = {"v": 1, "cluster_path": self.cluster_path, "seen_epoch": self.seen_epoch}
            tmp.write_text(json.dumps(record) + "\n")
            os.replace(tmp, self.path)
        except OSError as e:
            log.warning("membership_not_recorded", path=str(self.path), error=str(e))
            return
        self.found = True
