"""Who may do what in a cluster's ZooKeeper tree (closed by default).

Two kinds of identity, each a ZooKeeper user of zookeeper.auth.scheme: with
`digest` the ACL id is user:base64(sha1(user:password)), with `sasl` (DIGEST-MD5
against the servers' JAAS file) the user name:

* the **nodes** (zookeeper.auth, the same credential on every member): ALL on the
  cluster node and everything under it; they alone take the lock, write the
  breadcrumb, members and history;
* the **operators** (zookeeper.operators, one id each): READ everywhere and
  WRITE on `control` only. An operator's password can therefore never delete the
  lock or write `clean: true` into the breadcrumb (which would let the next
  takeover skip fencing). The one way an operator can make a takeover skip a
  fence is deliberate and narrow: `failoverctl confirm-fenced` writes the
  operator's word that a node is down into `control`, which covers that node's
  last term only, once, after the node's lease was waited out
  (failoverd/node/confirmation.py). Operator actions reach history through the
  daemons, which record the `reason` carried in `control`;
* each operator's **request znode** `requests/<user>` (request_acl): the nodes ALL,
  that operator READ and WRITE, every other operator READ. failoverctl writes it
  with each change it makes in `control`; the daemon takes the name history
  records from its path, because ZooKeeper, not the operator, decides who could
  write it. The nodes' own `requests/:nodes` (a colon is never in a user name)
  has the default ACL: only the nodes' credential writes it.

The daemon checks the exact ACL of the cluster node and of its five znodes on
every new session and refuses to run on a mismatch: an ACL it did not set means
someone with ADMIN rights changed the rules under it. The request znodes are not
in that check: the daemons set their ACLs on every new session instead
(zk/requests.py), since who may write one decides only a name in history.

The znodes above the cluster node (zookeeper.root, /failoverd by default, and its
own parents) are where cluster nodes get created. Open to everyone, anyone who
reaches ZooKeeper could create a cluster's node first with an ACL of their own
(its daemons then refuse to run), or fill the ensemble. So the daemon creates them
with the nodes ALL and the operators READ (root_acl), and refuses to run under one
that lets `world:anyone` change anything (open_to_anyone), except `/` itself, which
ZooKeeper makes open and the config keeps out of reach: zookeeper.root may not be /.
Digest cannot close `/`: any made-up user may create /failoverd before the first
daemon does (or after a data loss); only sasl admits known users alone.
"""

from __future__ import annotations

import base64
import hashlib

from kazoo.security import ACL, Id, Permissions

from failoverd.config import Config

# The znodes under the cluster node whose ACL is checked ("" is the cluster node).
CHECKED = ("", "lock", "active", "control", "members", "history")


def digest_id(user: str, password: str) -> str:
    """ZooKeeper's digest ACL id: user:base64(sha1("user:password"))."""
    hashed = hashlib.sha1(f"{user}:{password}".encode()).digest()  # noqa: S324 - ZooKeeper's scheme
    return f"{user}:{base64.b64encode(hashed).decode()}"


def credential_user(credential: str) -> str:
    return credential.partition(":")[0]


REQUESTS = "requests"
NODES_REQUEST = ":nodes"  # the request znode failoverctl writes with the nodes' credential


def operator_users(config: Config) -> tuple[str, ...]:
    """The configured operators' user names: the names their request znodes have."""
    return tuple(credential_user(op) for op in config.zookeeper.operators)


def _node_acl(config: Config) -> ACL | None:
    auth = config.zookeeper.auth
    if auth is None:
        return None
    user, _, password = auth.credential.partition(":")
    if auth.scheme == "sasl":
        return ACL(Permissions.ALL, Id("sasl", user))
    return ACL(Permissions.ALL, Id("digest", digest_id(user, password)))


def _operator_ids(config: Config) -> list[Id]:
    auth = config.zookeeper.auth
    scheme = "sasl" if auth is not None and auth.scheme == "sasl" else "digest"
    return [Id(scheme, op) for op in config.zookeeper.operators]


def default_acl(config: Config) -> list[ACL] | None:
    """What every znode the nodes create gets (lock, members/*, history/*):
    the nodes ALL, operators READ. None: no auth (kazoo's open default)."""
    node = _node_acl(config)
    if node is None:
        return None
    return [node, *(ACL(Permissions.READ, op) for op in _operator_ids(config))]


def root_acl(config: Config) -> list[ACL] | None:
    """zookeeper.root and its parents when the daemon creates them: the nodes ALL
    (they create the cluster node there), operators READ, nobody else anything."""
    return default_acl(config)


def control_acl(config: Config) -> list[ACL] | None:
    """`control`: operators may also write it (maintenance, switchover requests)."""
    node = _node_acl(config)
    if node is None:
        return None
    rw = Permissions.READ | Permissions.WRITE
    return [node, *(ACL(rw, op) for op in _operator_ids(config))]


# What world:anyone must not hold above the cluster node: creating (another
# cluster's node, or endless znodes), deleting, or ADMIN (which rewrites the ACL).
_CHANGES = Permissions.CREATE | Permissions.WRITE | Permissions.DELETE | Permissions.ADMIN


def open_to_anyone(acls: list[ACL]) -> bool:
    """True when these ACLs let anyone change the znode or what is under it."""
    return any(a.id.scheme == "world" and a.perms & _CHANGES for a in acls)


def ancestors(cluster_path: str) -> list[str]:
    """The znodes between / and the cluster node, nearest first ("/" excluded)."""
    parts = cluster_path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def closed_root_acl(config: Config, current: list[ACL]) -> list[ACL]:
    """`failoverctl fix-acl` on a parent: drop what world:anyone held, keep every
    other identity (clusters with other nodes' credentials may share the root),
    and make sure ours are there (the nodes ALL, operators READ)."""
    out = [a for a in current if a.id.scheme != "world"]
    for acl in root_acl(config) or []:
        if any(a.id == acl.id for a in out):
            out = [ACL(a.perms | acl.perms, a.id) if a.id == acl.id else a for a in out]
        else:
            out.append(acl)
    return out


def request_acl(config: Config, user: str) -> list[ACL] | None:
    """`requests/<user>`: the nodes ALL, `user`'s digest ids READ and WRITE, the
    other operators READ. No CREATE or DELETE for anyone but the nodes: the daemons
    create these znodes, one per configured operator."""
    node = _node_acl(config)
    if node is None:
        return None
    rw = Permissions.READ | Permissions.WRITE
    return [
        node,
        *(
            ACL(rw if credential_user(op) == user else Permissions.READ, Id("digest", op))
            for op in config.zookeeper.operators
        ),
    ]


def same(a: list[ACL], b: list[ACL]) -> bool:
    return _key(a) == _key(b)


def expected(config: Config) -> dict[str, list[ACL]] | None:
    base = default_acl(config)
    if base is None:
        return None
    control = control_acl(config)
    assert control is not None
    return {name: control if name == "control" else base for name in CHECKED}


def _key(acls: list[ACL]) -> set[tuple[str, str, int]]:
    return {(a.id.scheme, a.id.id, a.perms) for a in acls}


def describe(acls: list[ACL]) -> str:
    return ", ".join(f"{a.id.scheme}:{a.id.id}:{_perms(a.perms)}" for a in acls) or "none"


def _perms(perms: int) -> str:
    letters = zip("rwcda", (1, 2, 4, 8, 16), strict=True)
    return "".join(c for c, bit in letters if perms & bit) or "-"


def mismatches(config: Config, actual: dict[str, list[ACL] | None]) -> list[str]:
    """One sentence per znode whose ACL is not exactly the expected one
    (a missing znode, e.g. the lock while nobody holds it, is not a mismatch)."""
    want = expected(config)
    if want is None:
        return []
    out = []
    for name in CHECKED:
        got = actual.get(name)
        if got is None:
            continue
        if _key(got) != _key(want[name]):
            where = config.cluster_path + (f"/{name}" if name else "")
            out.append(f"{where}: ACL is [{describe(got)}], expected [{describe(want[name])}]")
    return out
