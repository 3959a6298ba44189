"""What only failoverctl asks of ZooKeeper, beyond what the daemon does: the
persistent znodes as bytes (`backup`, `restore`) and the cluster's ACLs (`fix-acl`).

Bytes, not records: a backup keeps what is stored, readable or not. What to restore
(never a lower epoch, never under a live lock, never maintenance off) is
cli/backup.py's decision; these only read and write, and every error of a restore
step begins "restoring the cluster's tree".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kazoo.exceptions import KazooException, NoNodeError

from failoverd.zk.coordinator import HISTORY_PREFIX, Coordinator
from failoverd.zk.errors import CoordinationError, WriteConflict, ZnodeMissing, zk_errors
from failoverd.zk.znodes import Breadcrumb, LockData, encode

RESTORING = "restoring the cluster's tree"
# Rewrites of the breadcrumb per transaction when raising its data version (each
# about 150 bytes of request; ZooKeeper refuses requests over 1 MiB).
VERSION_BATCH = 1000


@dataclass(frozen=True)
class PersistentZnodes:
    """What outlives every session, as the exact bytes stored (a garbled znode is
    kept as it was): the breadcrumb, the control znode and the history entries by
    name, oldest first. Not `lock` or `members/`: they are ephemeral."""

    active: bytes | None
    control: bytes | None
    history: list[tuple[str, bytes]]


class AdminCoordinator(Coordinator):
    """The Coordinator of failoverctl: everything the daemon's does, and these."""

    def set_acl(self, path: str, acl: list[Any], timeout: float) -> None:
        """Replace one znode's ACL (needs ADMIN: the nodes' own credential)."""
        with zk_errors(f"setting the ACL of {path}"):
            try:
                self._wait(self.client.set_acls_async(path, acl), timeout)
            except NoNodeError:
                raise ZnodeMissing(f"{path} does not exist") from None
            except KazooException as e:
                raise CoordinationError(f"setting the ACL of {path}: {type(e).__name__}") from None

    def read_acl(self, path: str, timeout: float) -> list[Any] | None:
        """One znode's ACL; None when it does not exist."""
        with zk_errors(f"reading the ACL of {path}"):
            try:
                acls, _ = self._wait(self.client.get_acls_async(path), timeout)
            except NoNodeError:
                return None
        return list(acls)

    def read_persistent(self, timeout: float) -> PersistentZnodes | None:
        """The cluster's persistent znodes; None when the cluster node does not exist."""
        with zk_errors("reading the cluster's tree"):
            if self._wait(self.client.exists_async(self.root), timeout) is None:
                return None
            active = self._read_bytes(self.active_path, timeout)
            control = self._read_bytes(self.control_path, timeout)
            return PersistentZnodes(active, control, self._history_bytes(timeout))

    def connected_members_and_lock(self, timeout: float) -> tuple[list[str], bool]:
        """Every name under members/ (configured or not) and whether a lock exists:
        any of them means a daemon is connected."""
        with zk_errors(RESTORING):
            members = self._wait(self.client.get_children_async(self.members_path), timeout)
            lock = self._wait(self.client.exists_async(self.lock_path), timeout)
        return members, lock is not None

    def read_breadcrumb_bytes(self, timeout: float) -> tuple[bytes | None, int | None]:
        """(the breadcrumb as stored, its version); (None, None) when there is none."""
        with zk_errors(RESTORING):
            try:
                raw, stat = self._wait(self.client.get_async(self.active_path), timeout)
            except NoNodeError:
                return None, None
        return raw, stat.version

    def restore_breadcrumb(self, crumb: Breadcrumb, version: int | None, timeout: float) -> int:
        """Write `crumb` over the breadcrumb at `version` (None: create it), in one
        transaction that also creates and deletes the lock: it fails, with
        WriteConflict, if any daemon holds the lock by now or the breadcrumb changed,
        so no breadcrumb is ever written under a live active.

        Then, the same way, rewrite it until the znode's data version is at least
        its epoch: a reader that cannot decode a breadcrumb (a release before its
        form) takes the data version for the epoch (decision.next_epoch), which is
        safe only while no epoch exceeds it, as a promotion adds one to both. If a
        daemon takes the lock meanwhile, its own breadcrumb follows and this stops.
        Returns the data version reached."""
        data = encode(crumb, self.format)
        reached = self._guarded_writes(data, version, 1, timeout)
        while reached < crumb.epoch:
            count = min(VERSION_BATCH, crumb.epoch - reached)
            try:
                reached = self._guarded_writes(data, reached, count, timeout)
            except WriteConflict:
                break
        return reached

    def _guarded_writes(self, data: bytes, version: int | None, count: int, timeout: float) -> int:
        """`count` writes of the breadcrumb, each at the version the previous one left
        (the first at `version`; None: it creates the znode), between the creation
        and deletion of the lock, in one transaction. Returns the version it leaves."""
        with zk_errors(RESTORING):
            t = self.client.transaction()
            t.create(self.lock_path, encode(LockData(self.node, "restore")))
            if version is None:
                t.create(self.active_path, data)
                version, count = 0, count - 1
            for i in range(count):
                t.set_data(self.active_path, data, version=version + i)
            t.delete(self.lock_path)
            results = self._wait(t.commit_async(), timeout)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise WriteConflict("restoring the breadcrumb", type(failed[0]).__name__)
        return version + count

    def restore_history(self, entries: Iterable[bytes], timeout: float) -> int:
        """Append each entry not already in history/, in the order given (as new
        sequential znodes, so entries written later sort after them); returns how
        many were added. Running it twice adds nothing."""
        with zk_errors(RESTORING):
            present = {data for _, data in self._history_bytes(timeout)}
            added = 0
            for data in entries:
                if data in present:
                    continue
                path = f"{self.history_path}/{HISTORY_PREFIX}"
                self._wait(self.client.create_async(path, data, sequence=True), timeout)
                added += 1
        return added

    def _read_bytes(self, path: str, timeout: float) -> bytes | None:
        try:
            data, _ = self._wait(self.client.get_async(path), timeout)
        except NoNodeError:
            return None
        return data

    def _history_bytes(self, timeout: float) -> list[tuple[str, bytes]]:
        try:
            names = self._wait(self.client.get_children_async(self.history_path), timeout)
        except NoNodeError:
            return []
        out = []
        for name in sorted(names):
            data = self._read_bytes(f"{self.history_path}/{name}", timeout)
            if data is not None:  # else pruned meanwhile
                out.append((name, data))
        return out
