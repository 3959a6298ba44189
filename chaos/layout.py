"""The lab's fixed layout: its addresses and the paths it claims in the root namespace.

Fixed before any lab is built and the same for every lab, so both sides read it
here: the lab (chaos/lab/) builds its hosts on these addresses, and the services
(chaos/services/) that run on a lab node listen on the VIP and find the mail
store's mount point without knowing how the lab was built. Imports nothing of
the chaos lab.

Every host is a namespace `<prefix>-<host>` with one veth `eth0` on
198.51.100.0/24 (TEST-NET-2: it exists only inside the lab); the VIP moves
between the two mail nodes.
"""

from __future__ import annotations

import json
from pathlib import Path

SUBNET = "198.51.100"
PREFIXLEN = 24
HOSTS = {"zk1": 1, "zk2": 2, "zk3": 3, "mail1": 11, "mail2": 12, "client": 100}
ZK_HOSTS = ("zk1", "zk2", "zk3")
MAIL_HOSTS = ("mail1", "mail2")
VIP = f"{SUBNET}.25"

# One file per live lab (chaos/lab/registry.py), so that `python -m chaos cleanup`
# finds the leftovers of a crashed run.
REGISTRY = Path("/run/failoverd-chaos")
# Short paths for everything that holds UNIX sockets (Postfix's queue, Dovecot's
# base_dir): sun_path has 108 bytes, and a run folder under a checkout is longer.
SHORT_ROOT = REGISTRY / "mail"


def address(host: str) -> str:
    return f"{SUBNET}.{HOSTS[host]}"


def short_dir(run_dir: Path) -> Path:
    """/run/failoverd-chaos/mail/<prefix>: this lab's short-path folder."""
    prefix = json.loads((run_dir / "lab.json").read_text())["prefix"]
    return SHORT_ROOT / prefix


def mount_dir(run_dir: Path) -> Path:
    """The mail store's mount point: the same path on both nodes, each mounts it privately."""
    return short_dir(run_dir) / "store"
