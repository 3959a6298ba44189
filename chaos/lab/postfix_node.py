"""The real mail node's failoverd config (`--mail postfix`): store, VIP, Postfix, Dovecot.

The toy node's config (chaos/lab/nodes.py) is rewritten for Debian's Postfix and
Dovecot (chaos/services/postfix.py): the ext4 store image (chaos/lab/store_image.py)
mounted by ocf:heartbeat:Filesystem from the node's own loop device and the VIP
together, then the two services together as `command` resources (`after:` both:
they listen on the VIP only and write to the store), each with a `kill` (SIGKILL,
the fast path of a fence); they stop together before the store and the VIP go. ssh
fencing verifies both ports.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from chaos.lab.store_image import loop_device
from chaos.layout import PREFIXLEN, VIP, mount_dir
from chaos.services.postfix import prepare_node


def mail_config(
    cfg: dict[str, Any], run: Path, node: str, unhealthy_flag: Path, variant: str
) -> dict[str, Any]:
    """failoverd.yaml for the real mail node: store and VIP, then Postfix and Dovecot.

    `variant` is the node's mail setting: "postfix", or a negative control's planted
    mistake (chaos/faults/controls.py).
    """
    prepare_node(run, node)

    def cmd(*words: str) -> list[str]:
        return [sys.executable, "-m", "chaos.services.postfix", *words, "--lab", str(run)] + [
            "--node",
            node,
        ]

    def service(name: str, timeout: str) -> dict[str, Any]:
        return {
            "type": "command",
            "name": name,
            "after": ["store", "vip"],
            "start": cmd("start", name),
            "stop": cmd("stop", name),
            # The fast path, when the stop is a fence (fence-self, a lost lease).
            "kill": cmd("kill", name),
            "status": cmd("status", name),
            "timeout": timeout,
        }

    cfg["health"]["checks"] = [
        # Could this node serve? Its path to the store exists and the fault flag is
        # absent (inside the daemon, no fork: see chaos/lab/nodes.py); where Postfix and
        # Dovecot run, they answer their banners on the VIP.
        {"type": "path", "path": loop_device(run, node)},
        {"type": "path", "path": str(unhealthy_flag), "absent": True},
        {"type": "smtp", "host": VIP, "port": 25, "timeout": "1500ms"},
        {"type": "imap", "host": VIP, "port": 143, "timeout": "1500ms"},
    ]
    cfg["resources"] = [
        {
            "type": "ocf",
            "name": "store",
            "agent": "heartbeat:Filesystem",
            "params": {
                "device": loop_device(run, node),
                "directory": str(mount_dir(run)),
                "fstype": "ext4",
            },
            "timeout": "20s",
        },
        # With the store, not after it: `after: []` waits for nothing.
        {"type": "vip", "name": "vip", "after": [], "address": f"{VIP}/{PREFIXLEN}",
         "interface": "eth0"},  # fmt: skip
        service("postfix", "15s"),
        service("dovecot", "10s"),
    ]
    for f in cfg["fencing"]:
        if f["type"] == "ssh":
            f["verify_ports"] = [25, 143]
    if variant == "postfix-lying-fencer":  # negative control: a fence that always "works"
        cfg["fencing"] = [{"type": "command", "argv": ["/bin/true"], "timeout": "5s"}]
    return cfg
