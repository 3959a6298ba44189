"""ZooKeeper credentials and state directories for every failoverd the tests,
the demo and the lab start, so they run the default, closed configuration
(zookeeper.auth set, node.state_dir root-owned 0700 outside /tmp) rather than
`zookeeper.insecure: true`.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

# failoverd refuses state dirs under /tmp and /var/tmp (systemd's PrivateTmp);
# /run is a tmpfs that is emptied at boot, so leftovers of a crashed run go too.
STATE_ROOT = Path("/run/failoverd-test")
NODE_USER = "failoverd"


# The nodes' password, one per process: every cluster a test run starts lives under
# the same zookeeper.root on the shared server, which lets only the nodes identity
# that created it create cluster nodes there (failoverd.zk.acl.root_acl). Clusters
# sharing a root in production share the nodes' identity the same way, or are
# each named in the root's ACL (deploy/zookeeper/README.md).
NODE_PASSWORD = secrets.token_urlsafe(18)


def write_credential(path: Path, user: str = NODE_USER) -> str:
    """user:password in `path` (mode 0600), the nodes' shared one for NODE_USER and
    a fresh password for anyone else; returns the credential."""
    password = NODE_PASSWORD if user == NODE_USER else secrets.token_urlsafe(18)
    credential = f"{user}:{password}"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(credential + "\n")
    os.chmod(path, 0o600)
    return credential


def zk_auth(credential_file: Path) -> dict[str, Any]:
    """The `zookeeper.auth` section for a credential file."""
    return {"scheme": "digest", "credential_file": str(credential_file)}


def digest_auth(credential_file: Path) -> list[tuple[str, str]]:
    """kazoo's auth_data for a credential file (for test clients that poke znodes)."""
    return [("digest", credential_file.read_text().strip())]


def jaas_server_section(users: dict[str, str]) -> str:
    """A ZooKeeper server's JAAS file admitting exactly `users` (name -> password)
    over SASL DIGEST-MD5, as deploy/zookeeper/README.md sets it up."""
    lines = [f'    user_{name}="{password}"' for name, password in users.items()]
    return (
        "Server {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        + "\n".join(lines)
        + ";\n};\n"
    )


def state_dir(*parts: str, remove_at_exit: bool = True) -> Path:
    """A node.state_dir failoverd accepts: root-owned, mode 0700, outside /tmp."""
    STATE_ROOT.mkdir(mode=0o700, exist_ok=True)
    os.chmod(STATE_ROOT, 0o700)
    path = STATE_ROOT.joinpath(*parts)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for p in (path, *path.parents):
        if p == STATE_ROOT:
            break
        os.chmod(p, 0o700)
    if remove_at_exit:
        atexit.register(shutil.rmtree, STATE_ROOT / parts[0], True)
    return path


def state_dir_for(workdir: Path, node: str) -> Path:
    """The state dir of `node` in a run whose files live in `workdir` (which may
    well be under /tmp, where failoverd refuses state dirs)."""
    key = hashlib.sha1(str(workdir.resolve()).encode()).hexdigest()[:10]  # noqa: S324
    return state_dir(f"{workdir.name[:40]}-{key}", node)
