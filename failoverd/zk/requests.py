"""The operators' request znodes, `<cluster>/requests/<user>`: who made a change.

`control` is writable by every operator, so a name written into it is only a
claim. A request znode is writable by one operator only (acl.request_acl), so
the daemon records the operator a change came from by the *path* of the request
znode that stands for it. The nodes create these znodes (operators have no
CREATE under the cluster), one per configured operator, and set their ACL on
every new session: an operator added, removed or given a new password in
zookeeper.operators changes who may write which one.

Without zookeeper.auth there are no request znodes: anyone could write any of
them, so they would prove nothing.
"""

from __future__ import annotations

from typing import Any

import structlog
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from failoverd.config import Config
from failoverd.zk import acl as zk_acl
from failoverd.zk.errors import zk_errors
from failoverd.zk.znodes import OperatorRequest, OperatorRequests, ZnodeError, encode

log = structlog.get_logger(__name__)


class RequestZnodes:
    def __init__(self, config: Config, client: Any, root: str) -> None:
        self.config = config
        self.client = client
        self.path = f"{root}/{zk_acl.REQUESTS}"
        self.calls = 0  # ZooKeeper requests made (the Coordinator's count adds them)

    def _wait(self, async_result: Any, timeout: float) -> Any:
        self.calls += 1
        return async_result.get(timeout=timeout)

    def names(self) -> tuple[str, ...]:
        """The request znodes the daemon reads: configured operators', and the nodes'.
        A user name that cannot be a znode name (a "/" in it, "." or "..") gets none:
        that operator's changes are recorded as claims."""
        users = [u for u in zk_acl.operator_users(self.config) if "/" not in u]
        return (*(u for u in users if u not in (".", "..")), zk_acl.NODES_REQUEST)

    def _acl(self, name: str) -> Any:
        if name == zk_acl.NODES_REQUEST:
            return zk_acl.default_acl(self.config)
        return zk_acl.request_acl(self.config, name)

    def ensure(self, timeout: float) -> None:
        """Create `requests/` and one znode per name, each with exactly its ACL."""
        if zk_acl.default_acl(self.config) is None:
            return
        with zk_errors("creating the request znodes"):
            self._ensure(self.path, zk_acl.default_acl(self.config), timeout)
            for name in self.names():
                self._ensure(f"{self.path}/{name}", self._acl(name), timeout)

    def _ensure(self, path: str, acl: Any, timeout: float) -> None:
        try:
            self._wait(self.client.create_async(path, b"", acl=acl), timeout)
            return
        except NodeExistsError:
            pass
        actual, stat = self._wait(self.client.get_acls_async(path), timeout)
        if not zk_acl.same(actual, acl):
            # Only the nodes' credential has ADMIN here: this is a change in
            # zookeeper.operators (or the ACL of an older release's tree) catching up.
            log.warning("request_acl_set", path=path, was=zk_acl.describe(actual))
            self._wait(self.client.set_acls_async(path, acl, version=stat.aversion), timeout)

    def read(self, timeout: float) -> dict[str, tuple[OperatorRequests, int]]:
        """name -> (its requests, the server's mtime of it in ms); an empty,
        unreadable or missing znode is left out (it vouches for nothing)."""
        out: dict[str, tuple[OperatorRequests, int]] = {}
        if zk_acl.default_acl(self.config) is None:
            return out
        with zk_errors("reading the request znodes"):
            for name in self.names():
                try:
                    raw, stat = self._wait(self.client.get_async(f"{self.path}/{name}"), timeout)
                except NoNodeError:
                    continue
                try:
                    out[name] = (OperatorRequests.decode(raw), stat.mtime)
                except ZnodeError:
                    continue
        return out

    def add(self, name: str, request: OperatorRequest, timeout: float) -> bool:
        """failoverctl: add `request` to its own request znode (compare-and-set, so
        two commands at once both land). False when there is no such znode (no
        zookeeper.auth, a credential that is not a configured operator, or daemons
        of a release without request znodes): the change is then only a claim."""
        path = f"{self.path}/{name}"
        with zk_errors("writing the request znode"):
            for _ in range(5):
                try:
                    raw, stat = self._wait(self.client.get_async(path), timeout)
                except NoNodeError:
                    return False
                try:
                    mine = OperatorRequests.decode(raw)
                except ZnodeError:
                    mine = OperatorRequests()  # empty as created, or garbage: start afresh
                data = encode(mine.adding(request))
                try:
                    self._wait(self.client.set_async(path, data, version=stat.version), timeout)
                    return True
                except BadVersionError:
                    continue
        return False
