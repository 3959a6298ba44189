"""Who is running failoverctl, for the audit trail.

With an operator credential (`failoverctl --credential FILE` or
FAILOVERCTL_CREDENTIAL) the name is the credential's ZooKeeper user, and each
change is also added to that user's request znode, `requests/<user>`, which
ZooKeeper lets only that credential write: the daemons record the change under
that znode's name, whatever name `control` carries (node/operator_audit.py).
Without one, failoverctl uses the node's own credential (root on a node can read
it anyway) and writes the nodes' request znode, `requests/:nodes`; the name is
"node:HOST (sudo user LOGIN, claimed)", LOGIN from SUDO_USER, else USER or LOGNAME,
else the real uid's login name (login_name): the node's credential is proven, the
host and login are an honest label, not a proof.
"""

from __future__ import annotations

import os
import pwd
import re
import socket
import stat

from failoverd.zk.acl import NODES_REQUEST

_CREDENTIAL = re.compile(r"[^:\s]{1,64}:\S+")


def read_operator_credential(path: str) -> str:
    """ "user:password" from `path`; ValueError naming the file for anything else."""
    try:
        st = os.stat(path)
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise ValueError(
                f"{path}: readable or writable by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                "chmod 600 it"
            )
        with open(path, encoding="utf-8") as f:
            credential = f.read().strip()
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    if not _CREDENTIAL.fullmatch(credential):
        raise ValueError(f"{path}: does not look like user:password")
    return credential


def operator_name(credential: str | None) -> str:
    if credential is not None:
        return credential.partition(":")[0]
    return f"node:{socket.gethostname()} (sudo user {login_name()}, claimed)"


def login_name() -> str:
    """Who ran this: SUDO_USER (root by sudo), else USER or LOGNAME, else the real
    uid's passwd entry (cron and `env -i` set neither), else the uid itself."""
    for var in ("SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


def request_znode(credential: str | None) -> str:
    """The name of the request znode this credential writes (zk/requests.py)."""
    return NODES_REQUEST if credential is None else credential.partition(":")[0]
