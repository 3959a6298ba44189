"""Everything the daemon says to ZooKeeper, through kazoo: the lock
(the lease), the breadcrumb, members, control and history. failoverctl uses the same
through admin.py, which adds its backup, restore and ACL repair.

Rules that keep this safe (each measured against kazoo and a real ensemble):

* Every call has a deadline: requests queued while kazoo reconnects may run much
  later, so nobody waits on ZooKeeper without a bound.
* Listener and watch callbacks only hand an event name to the daemon's queue;
  they never call back into kazoo (a kazoo call from its own event thread can deadlock).
* Lock ownership is judged by the lock's `ephemeralOwner` against the session
  the lease was granted in, never by kazoo's connection state.
* Writes that must not race use a multi-op transaction that also checks our lock,
  so they cannot succeed unless our session still holds the lease.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog
from kazoo.client import KazooState
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import ZnodeStat
from kazoo.security import OPEN_ACL_UNSAFE, Permissions

from failoverd.config import Config
from failoverd.observe.redact import redact
from failoverd.zk import acl as zk_acl
from failoverd.zk.client import make_client
from failoverd.zk.errors import AccessRefused, CoordinationError, zk_errors
from failoverd.zk.formats import write_format
from failoverd.zk.lease import LocalLease
from failoverd.zk.requests import RequestZnodes
from failoverd.zk.znodes import (
    SCHEMA_VERSION,
    UNREADABLE_CONTROL,
    Breadcrumb,
    Control,
    HistoryEntry,
    KnownEpochs,
    LocalFloor,
    LockData,
    MemberStatus,
    ZnodeError,
    encode,
    now_iso,
)

log = structlog.get_logger(__name__)

HISTORY_KEEP = 200  # entries kept in history/ (oldest pruned)
HISTORY_PREFIX = "entry-"


class Coordinator:
    """One cluster's znodes under `<root>/<cluster>`."""

    # The znode format we write: the newest every member reads (formats.py),
    # updated whenever the members are read.
    format: int = SCHEMA_VERSION

    def __init__(
        self,
        config: Config,
        on_event: Callable[[str], None] = lambda _e: None,
        credential: str | None = None,
    ):
        self.config = config
        self.node = config.node.name
        self.root = config.cluster_path
        self.lock_path = f"{self.root}/lock"
        self.active_path = f"{self.root}/active"
        self.control_path = f"{self.root}/control"
        self.members_path = f"{self.root}/members"
        self.history_path = f"{self.root}/history"
        self.client = make_client(config, credential)
        self.operator_requests = RequestZnodes(config, self.client, self.root)
        # The server's mtime (ms) of `control` at the last read: a request znode
        # vouches only for a change in control written just after it.
        self.control_mtime: int | None = None
        self.on_event = on_event
        self.requests = 0  # ZooKeeper requests made (metrics, benchmarks)
        self._warned_short = False
        self._member_session: int | None = None
        self.client.add_listener(self._on_state)

    # -- connection -------------------------------------------------------

    def _on_state(self, state: str) -> None:
        # kazoo's event thread: hand over, never block.
        self.on_event(f"zk_{str(state).lower()}")

    def start(self, timeout: float | None = None) -> None:
        """Connect; with a timeout, raise CoordinationError if not connected by then."""
        event = self.client.start_async()
        if timeout is not None:
            event.wait(timeout)
            if not self.client.connected:
                self.client.stop()
                refused = getattr(self.client, "sasl_refused", None)
                if refused is not None:
                    raise AccessRefused(
                        f"ZooKeeper at {self.config.zookeeper.hosts} refused the SASL login "
                        f"of {refused}",
                        "login_refused",
                    )
                raise CoordinationError(
                    f"cannot reach ZooKeeper at {self.config.zookeeper.hosts} within {timeout:g}s"
                )

    def close(self) -> None:
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # noqa: BLE001 - closing must not raise at shutdown
            log.warning("zookeeper_close_failed")

    @property
    def connected(self) -> bool:
        return self.client.state == KazooState.CONNECTED

    def granted_timeout(self) -> float | None:
        """The session timeout the server granted on the last connect (seconds)."""
        return getattr(self.client, "granted_timeout", None)

    def _limit(self, lease: LocalLease) -> None:
        granted = self.granted_timeout()
        if granted is None:
            return
        if granted < self.config.zookeeper.session_timeout and not self._warned_short:
            self._warned_short = True
            log.critical(
                "session_timeout_shortened",
                configured=self.config.zookeeper.session_timeout,
                granted=granted,
                hint="the server's maxSessionTimeout is lower; the lease follows the granted value",
            )
        lease.limit(granted)

    @property
    def last_session_id(self) -> int | None:
        """The session kazoo holds or is trying to resume, connected or not (it
        changes only when the session expired and a new one was created)."""
        # kazoo's client_id is None while disconnected; _session_id survives a
        # disconnect and is reset only when the session expired.
        return getattr(self.client, "_session_id", None) or None

    @property
    def session_id(self) -> int | None:
        cid = self.client.client_id
        return cid[0] if cid and self.connected else None

    def watch(self) -> None:
        """Wake the daemon whenever the lock or the operator's control changes.
        DataWatch re-registers itself across reconnects."""
        self.client.DataWatch(self.lock_path, lambda *_a: self.on_event("lock_changed"))
        self.client.DataWatch(self.control_path, lambda *_a: self.on_event("control_changed"))

    def _wait(self, async_result: Any, timeout: float) -> Any:
        self.requests += 1
        try:
            return async_result.get(timeout=timeout)
        except (ConnectionLoss, KazooTimeoutError):
            # kazoo counts a session as connected before its SASL login; when the
            # servers refuse that login, what the call sees is a lost connection.
            refused = getattr(self.client, "sasl_refused", None)
            if refused is not None:
                raise AuthFailedError(f"the servers refused the SASL login of {refused}") from None
            raise

    # -- tree ---------------------------------------------------------------

    def ensure_tree(self, timeout: float, lost_if_missing: bool = False) -> None:
        """Create the cluster's znodes. A brand-new cluster gets an initial clean
        breadcrumb naming nobody, in the same transaction as the cluster node: so a
        cluster node *without* a breadcrumb can only mean the breadcrumb was lost,
        which plan_fencing treats as "previous active unknown".

        `lost_if_missing`: the caller knows the cluster existed (membership.py), so a
        missing tree was lost, not never made: it is recreated without a breadcrumb."""
        self.ensure_parents(timeout)
        with zk_errors("creating the cluster's znodes"):
            acl = zk_acl.default_acl(self.config)
            control_acl = zk_acl.control_acl(self.config)
            if self._wait(self.client.exists_async(self.root), timeout) is None:
                if lost_if_missing:
                    log.critical(
                        "cluster_tree_lost",
                        path=self.root,
                        hint="ZooKeeper lost this cluster's data: the next active fences every "
                        "peer; restore a backup with failoverctl restore",
                    )
                t = self.client.transaction()
                t.create(self.root, b"", acl=acl)
                if not lost_if_missing:
                    crumb = encode(Breadcrumb(None, 0, now_iso(), True))
                    t.create(self.active_path, crumb, acl=acl)
                t.create(self.control_path, encode(Control()), acl=control_acl)
                t.create(self.members_path, b"", acl=acl)
                t.create(self.history_path, b"", acl=acl)
                results = self._wait(t.commit_async(), timeout)
                if isinstance(results[0], NoAuthError):
                    parent = self.root.rsplit("/", 1)[0]
                    raise CoordinationError(
                        f"creating {self.root}: NoAuth: {parent} does not let this cluster's "
                        "nodes create under it; add them to its ACL (failoverctl fix-acl, "
                        f"with a credential that has ADMIN on {parent})"
                    )
                if any(isinstance(r, Exception) for r in results) and not isinstance(
                    results[0], NodeExistsError
                ):
                    raise CoordinationError(f"creating the cluster's znodes: {results}")
            for path, data, node_acl in (
                (self.members_path, b"", acl),
                (self.history_path, b"", acl),
                (self.control_path, encode(Control()), control_acl),
            ):
                try:
                    self._wait(self.client.create_async(path, data, acl=node_acl), timeout)
                except NodeExistsError:
                    pass
        try:
            self.operator_requests.ensure(timeout)
        except CoordinationError as e:
            # They only say who made a change; without them changes are recorded
            # as claims. Never a reason to keep the daemon from its session.
            log.warning("request_znodes_not_set", error=str(e))

    def ensure_parents(self, timeout: float) -> None:
        """Create zookeeper.root (and its own parents) if missing, closed: the nodes
        ALL, operators READ (acl.root_acl), so nobody else can create a cluster
        node there. Without zookeeper.auth (insecure) they are open, like the tree.
        One that exists is left as it is: open_parents judges it."""
        parent = self.root.rsplit("/", 1)[0]
        if not parent:
            return
        acl = zk_acl.root_acl(self.config) or OPEN_ACL_UNSAFE
        with zk_errors(f"creating {parent}"):
            self._wait(self.client.ensure_path_async(parent, acl=acl), timeout)

    def open_parents(self, timeout: float) -> list[tuple[str, str]]:
        """(znode, its ACL described) for each parent of the cluster node, nearest
        first, that lets anyone create, change or delete under it, or whose ACL we
        may not read (then we cannot tell). `/` is not judged: ZooKeeper makes it
        open, and the config keeps the cluster node from sitting right under it."""
        out = []
        for path in zk_acl.ancestors(self.root):
            with zk_errors(f"reading the ACL of {path}"):
                try:
                    acls, _ = self._wait(self.client.get_acls_async(path), timeout)
                except NoNodeError:
                    continue
                except NoAuthError:
                    out.append((path, "unreadable for this cluster's nodes (NoAuth)"))
                    continue
            if zk_acl.open_to_anyone(acls):
                out.append((path, zk_acl.describe(acls)))
        return out

    def acl_mismatches(self, timeout: float) -> list[str]:
        """The cluster node and its five znodes whose ACL is not exactly what
        acl.expected says (empty without zookeeper.auth)."""
        if zk_acl.expected(self.config) is None:
            return []
        actual: dict[str, Any] = {}
        with zk_errors("reading the cluster's ACLs"):
            for name in zk_acl.CHECKED:
                path = f"{self.root}/{name}" if name else self.root
                try:
                    actual[name], _ = self._wait(self.client.get_acls_async(path), timeout)
                except NoNodeError:
                    actual[name] = None
        return zk_acl.mismatches(self.config, actual)

    def world_writable(self, timeout: float) -> bool:
        """True when anyone may change the cluster's tree (no auth, or an open ACL):
        whoever can write `lock` or `active` can cause a split brain."""
        with zk_errors("reading the cluster's ACL"):
            acls, _ = self._wait(self.client.get_acls_async(self.root), timeout)
        return any(
            a.id.scheme == "world"
            and a.perms & (Permissions.WRITE | Permissions.CREATE | Permissions.DELETE)
            for a in acls
        )

    # -- lock (the lease) ----------------------------------------------------

    def try_acquire(self, lease: LocalLease, timeout: float) -> bool:
        """Create the ephemeral lock; on success grant the local lease from the
        moment the request was sent."""
        session = self.session_id
        if session is None:
            return False
        self._limit(lease)
        t_send = lease.clock()  # the lease's own clock stamps every send (lease.py)
        data = encode(LockData(self.node, f"{session:#x}"), self.format)
        with zk_errors("creating the lock"):
            try:
                self._wait(self.client.create_async(self.lock_path, data, ephemeral=True), timeout)
            except NodeExistsError:
                return False
        lease.grant(session, t_send)
        return True

    def read_lock(self, timeout: float) -> tuple[str | None, int | None, int]:
        """(holder name or None if no lock or "" if unreadable, ephemeralOwner, version)."""
        with zk_errors("reading the lock"):
            try:
                raw, stat = self._wait(self.client.get_async(self.lock_path), timeout)
            except NoNodeError:
                return None, None, -1
        try:
            holder = LockData.decode(raw).node
        except ZnodeError as e:
            log.error("lock_unreadable", error=str(e))
            holder = ""
        return holder, stat.ephemeralOwner, stat.version

    def send_lease_check(self, lease: LocalLease, done: Callable[[bool | None], None]) -> bool:
        """Send one lease round trip and return at once (lease_keeper pipelines them):
        sync (so a follower cut off from the quorum cannot answer from stale data),
        then read the lock's stat. Whenever the answer arrives, `done` gets the
        verdict on kazoo's completion thread: True renewed from this request's send
        time; False revoked (the lock is gone or owned by another session); None no
        verdict (no answer, or the lease was given back or granted anew meanwhile).
        False when nothing was sent (no lease held, or the client is closed)."""
        if lease.ticket() is None:
            return False
        self._limit(lease)
        send = lease.stamp()  # after _limit: the margin it uses is the granted one
        if send is None:
            return False
        ticket = send.ticket
        if send.renew_from < send.t_send:
            # The answer renews less far than its send time alone would allow
            # (lease.py); a gap like this is a frozen daemon or a stalled keeper.
            log.warning("lease_send_gap", gap=round(send.gap, 3), margin=round(lease.margin, 3))
        try:
            # ZooKeeper answers one session's requests in order: the exists is
            # served only after the sync went through the leader.
            self.client.sync_async(self.lock_path)
            answer = self.client.exists_async(self.lock_path)
        except KazooException:
            return False
        lease.sent(send)
        self.requests += 2

        def judge(result: Any) -> None:
            # kazoo's completion thread: only the thread-safe lease, and `done`.
            try:
                stat: ZnodeStat | None = result.get_nowait()
            except Exception:  # noqa: BLE001 - a lost connection proves nothing either way
                done(None)
                return
            if stat is None or stat.ephemeralOwner != ticket.session:
                done(False if lease.revoke(ticket) else None)
            else:
                done(True if lease.answered(send) else None)

        answer.rawlink(judge)
        return True

    def check_lease(self, lease: LocalLease, timeout: float) -> bool | None:
        """One lease round trip, waiting at most `timeout` for the verdict (see
        send_lease_check; None: no verdict yet. An answer that comes later still
        renews the lease)."""
        verdict: list[bool | None] = []
        answered = threading.Event()

        def done(v: bool | None) -> None:
            verdict.append(v)
            answered.set()

        if not self.send_lease_check(lease, done):
            return False
        return verdict[0] if answered.wait(timeout) else None

    def release_lock(self, lease: LocalLease, timeout: float) -> bool:
        """Delete the lock, but only if our lease's session owns it."""
        session = lease.session
        lease.revoke()
        if session is None:
            return False
        with zk_errors("releasing the lock"):
            try:
                stat = self._wait(self.client.exists_async(self.lock_path), timeout)
                if stat is None or stat.ephemeralOwner != session:
                    return False
                self._wait(self.client.delete_async(self.lock_path, version=stat.version), timeout)
            except NoNodeError:
                return False
        return True

    def release_stray_lock(self, timeout: float) -> None:
        session = self.session_id
        holder, owner, version = self.read_lock(timeout)
        if owner is not None and owner == session:
            with zk_errors("releasing a stray lock"):
                self._wait(self.client.delete_async(self.lock_path, version=version), timeout)

    # -- breadcrumb -------------------------------------------------------------

    def read_breadcrumb(self, timeout: float) -> tuple[Breadcrumb | None, bool, int | None]:
        """(breadcrumb or None, readable, znode data version or None if missing)."""
        with zk_errors("reading the breadcrumb"):
            try:
                raw, stat = self._wait(self.client.get_async(self.active_path), timeout)
            except NoNodeError:
                return None, True, None
        try:
            return Breadcrumb.decode(raw), True, stat.version
        except ZnodeError as e:
            log.error("breadcrumb_unreadable", error=str(e))
            return None, False, stat.version

    def write_breadcrumb(
        self, crumb: Breadcrumb, expected_version: int | None, timeout: float
    ) -> None:
        """Compare-and-set the breadcrumb, in one transaction with a check that our
        lock still exists (it can only exist in our session while we hold it)."""
        lock_stat = None
        with zk_errors("writing the breadcrumb"):
            lock_stat = self._wait(self.client.exists_async(self.lock_path), timeout)
            if lock_stat is None or lock_stat.ephemeralOwner != self.session_id:
                raise CoordinationError("writing the breadcrumb: the lock is not ours")
            t = self.client.transaction()
            t.check(self.lock_path, lock_stat.version)
            if expected_version is None:
                t.create(self.active_path, encode(crumb, self.format))
            else:
                t.set_data(self.active_path, encode(crumb, self.format), version=expected_version)
            results = self._wait(t.commit_async(), timeout)
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            raise CoordinationError(f"writing the breadcrumb: {failures[0]!r}")

    def mark_clean(self, epoch: int, timeout: float) -> bool:
        """After a completed demotion: breadcrumb says we handed over cleanly."""
        crumb, readable, version = self.read_breadcrumb(timeout)
        if not readable or crumb is None or crumb.node != self.node or crumb.epoch != epoch:
            return False
        self.write_breadcrumb(Breadcrumb(self.node, epoch, crumb.since, True), version, timeout)
        return True

    # -- members, control, history ------------------------------------------

    def write_member(self, status: MemberStatus, timeout: float) -> None:
        """Publish our status. After the first write in a session the update is sent
        without waiting for the answer: a status report must never delay a
        demotion (ZooKeeper applies one session's writes in order)."""
        path = f"{self.members_path}/{self.node}"
        data = encode(replace(status, reason=redact(status.reason)), self.format)
        session = self.session_id
        if session is not None and session == self._member_session:
            self.requests += 1
            self.client.set_async(path, data)
            return
        with zk_errors("writing member status"):
            stat = self._wait(self.client.exists_async(path), timeout)
            if stat is not None and stat.ephemeralOwner != session:
                # Left by our previous session (daemon restart): replace it.
                try:
                    self._wait(self.client.delete_async(path), timeout)
                except NoNodeError:
                    pass
                stat = None
            if stat is None:
                self._wait(self.client.create_async(path, data, ephemeral=True), timeout)
            else:
                self._wait(self.client.set_async(path, data), timeout)
        self._member_session = session

    def read_members(self, timeout: float) -> dict[str, MemberStatus | None]:
        """name -> status (None when the status is unreadable), for configured
        members only: a znode under members/ with any other name is not read at
        all, so it can neither steer decisions nor slow the loop down."""
        out: dict[str, MemberStatus | None] = {}
        configured = set(self.config.member_names)
        with zk_errors("reading members"):
            try:
                names = self._wait(self.client.get_children_async(self.members_path), timeout)
            except NoNodeError:
                return out
            for name in sorted(set(names) & configured):
                try:
                    raw, _ = self._wait(
                        self.client.get_async(f"{self.members_path}/{name}"), timeout
                    )
                except NoNodeError:
                    continue
                try:
                    status = MemberStatus.decode(raw)
                except ZnodeError:
                    status = None
                # A status claiming to be another member is not this member's.
                out[name] = status if status is not None and status.node == name else None
        self.format = write_format(out, self.config.member_names)
        return out

    def read_control(self, timeout: float) -> tuple[Control, int | None]:
        """(control, version); unreadable content reads as maintenance (the unsafe
        case: no automatic transitions), a missing znode as the defaults."""
        with zk_errors("reading control"):
            try:
                raw, stat = self._wait(self.client.get_async(self.control_path), timeout)
            except NoNodeError:
                return Control(), None
        self.control_mtime = stat.mtime
        try:
            return Control.decode(raw), stat.version
        except ZnodeError as e:
            log.error("control_unreadable", error=str(e))
            return UNREADABLE_CONTROL, stat.version

    def write_control(self, control: Control, version: int | None, timeout: float) -> None:
        """Compare-and-set the control znode (raises CoordinationError on a race)."""
        with zk_errors("writing control"):
            if version is None:
                self._wait(
                    self.client.create_async(self.control_path, encode(control, self.format)),
                    timeout,
                )
            else:
                self._wait(
                    self.client.set_async(
                        self.control_path, encode(control, self.format), version=version
                    ),
                    timeout,
                )

    def consume_fence_confirmation(self, confirmation_id: str, timeout: float) -> bool:
        """Remove the operator's fence confirmation from `control`, in one transaction
        with a check that our lock still exists: True only for the one lock holder
        whose write took it (node/confirmation.py), so it is used exactly once."""
        with zk_errors("consuming the fence confirmation"):
            lock_stat = self._wait(self.client.exists_async(self.lock_path), timeout)
            if lock_stat is None or lock_stat.ephemeralOwner != self.session_id:
                return False
            raw, stat = self._wait(self.client.get_async(self.control_path), timeout)
            new = self._without_confirmation(raw, confirmation_id)
            if new is None:
                return False
            t = self.client.transaction()
            t.check(self.lock_path, lock_stat.version)
            t.set_data(self.control_path, new, version=stat.version)
            results = self._wait(t.commit_async(), timeout)
        return not any(isinstance(r, Exception) for r in results)

    def withdraw_fence_confirmation(self, confirmation_id: str, timeout: float) -> bool:
        """Remove the operator's fence confirmation `confirmation_id` from `control`
        (its node was seen again, node/confirmation.py `withdrawal`). Version-checked:
        True only if this write removed exactly that one; a confirmation written since
        is left alone."""
        with zk_errors("withdrawing the fence confirmation"):
            try:
                raw, stat = self._wait(self.client.get_async(self.control_path), timeout)
            except NoNodeError:
                return False
            new = self._without_confirmation(raw, confirmation_id)
            if new is None:
                return False
            try:
                self._wait(
                    self.client.set_async(self.control_path, new, version=stat.version), timeout
                )
            except BadVersionError:
                return False  # control changed meanwhile: the next read judges again
        return True

    def _without_confirmation(self, raw: bytes, confirmation_id: str) -> bytes | None:
        """`control` as read, with the fence confirmation `confirmation_id` removed;
        None when control is unreadable or holds no such confirmation (one written
        since has another id and is left alone)."""
        try:
            control = Control.decode(raw)
        except ZnodeError:
            return None
        conf = control.fence_confirmed
        if conf is None or conf.id != confirmation_id:
            return None
        return encode(replace(control, fence_confirmed=None), self.format)

    def append_history(self, entry: HistoryEntry) -> None:
        """Add an audit record without waiting (it must not delay a transition)."""
        self.requests += 1
        entry = replace(entry, reason=redact(entry.reason))
        self.client.create_async(
            f"{self.history_path}/{HISTORY_PREFIX}", encode(entry, self.format), sequence=True
        )

    def prune_history(self, timeout: float) -> None:
        """Keep the newest HISTORY_KEEP entries."""
        with zk_errors("pruning history"):
            names = sorted(self._wait(self.client.get_children_async(self.history_path), timeout))
            for old in names[: max(0, len(names) - HISTORY_KEEP)]:
                try:
                    self._wait(self.client.delete_async(f"{self.history_path}/{old}"), timeout)
                except NoNodeError:
                    pass

    def read_history(self, limit: int, timeout: float) -> list[HistoryEntry | None]:
        """Newest first; None for an unreadable entry."""
        out: list[HistoryEntry | None] = []
        with zk_errors("reading history"):
            try:
                names = self._wait(self.client.get_children_async(self.history_path), timeout)
            except NoNodeError:
                return out
            for name in sorted(names, reverse=True)[:limit]:
                try:
                    raw, _ = self._wait(
                        self.client.get_async(f"{self.history_path}/{name}"), timeout
                    )
                except NoNodeError:
                    continue
                try:
                    out.append(HistoryEntry.decode(raw))
                except ZnodeError:
                    out.append(None)
        return out

    def highest_known_epoch(self, timeout: float) -> KnownEpochs:
        """The epochs a new active must go above (decision.plan_epoch): the highest
        in history and the members' epochs, and each member's local floors, its fence
        marker and the highest epoch it remembers seeing. Those live on the nodes,
        not in ZooKeeper, so epochs continue above every fenced and every seen one
        even after ZooKeeper lost its data: an epoch at or below a node's marker
        would be refused there.

        Unreadable entries are skipped (they were decoded into None, whatever they
        held): a poisoned history entry must not stop a takeover half-way."""
        epochs = [e.epoch for e in self.read_history(20, timeout) if e and e.epoch is not None]
        local: list[LocalFloor] = []
        for name, m in sorted(self.read_members(timeout).items()):
            if m is not None:
                epochs += [m.epoch] if m.epoch is not None else []
                local += [
                    LocalFloor(name, what, e)
                    for what, e in (("fence_epoch", m.fence_epoch), ("seen_epoch", m.seen_epoch))
                    if e is not None
                ]
        return KnownEpochs(max(epochs, default=0), tuple(local))
