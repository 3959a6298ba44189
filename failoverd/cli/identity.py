"""Who is running failoverctl, for the audit trail.

With an operator credential (`failoverctl --credential FILE` or
FAILOVERCTL_CREDENTIAL) the name is the credential's ZooKeeper user: ZooKeeper
itself authenticated it, and its ACL lets it write only `control`. Without one,
failoverctl uses the node's own credential (root on a node can read it anyway)
and the name is the login behind sudo (SUDO_USER), else USER, marked with the
host it ran on: an honest label, not a proof.
"""

from __future__ import annotations

import os
import re
import socket
import stat

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
    login = os.environ.get("SUDO_USER") or os.environ.get("USER") or "unknown"
    return f"{login}@{socket.gethostname()}"
