"""The mail node's store: an ext4 image that stands for a SAN LUN both nodes can reach.

Each node gets its *own* loop device onto the one image file, as each machine has
its own path to a shared LUN. Two loop devices (not one) matter: the kernel gives
two mounts of the same block device one shared superblock, which would hide
exactly the damage a double mount does; two devices give two independent ext4
instances writing one disk, as two machines would.

Nothing but failoverd keeps two nodes from mounting it at once. The active mounts
it (ocf:heartbeat:Filesystem) inside its node's private mount namespace, so the
other node never sees the mount. After the run, `fsck` (e2fsck -f -n) judges the
image once every loop device is released.

Teardown safety: the image path is written into the lab's registry *before* any
loop device exists, and devices are found again by their backing file
(`losetup -j`), so `python -m chaos cleanup` releases them after any crash.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from chaos.lab import registry
from chaos.lab.network import Lab
from chaos.layout import MAIL_HOSTS, SHORT_ROOT, mount_dir

IMAGE = "mailstore.img"
SIZE = "64M"


def image_path(run_dir: Path) -> Path:
    return run_dir / IMAGE


def remove_short_dir(prefix: str) -> None:
    """Empty folders in the root namespace (the mounts live in the nodes' namespaces)."""
    if prefix and "/" not in prefix:
        shutil.rmtree(SHORT_ROOT / prefix, ignore_errors=True)


def _sh(argv: list[str], timeout: float = 30.0) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def create(lab: Lab) -> dict[str, str]:
    """Make the image, format it, attach one loop device per node; return node -> device."""
    img = image_path(lab.run_dir)
    # Before the first loop device exists: a crash from here on leaves nothing unnamed.
    registry.add_fields(lab.prefix, lab.run_dir, mail_image=str(img))
    img.unlink(missing_ok=True)
    _sh(["truncate", "-s", SIZE, str(img)])
    _sh(["mkfs.ext4", "-q", "-F", "-L", "mailstore", str(img)])
    mount_dir(lab.run_dir).mkdir(parents=True, exist_ok=True)
    devices = {node: _sh(["losetup", "-f", "--show", str(img)]).strip() for node in MAIL_HOSTS}
    registry.add_fields(lab.prefix, lab.run_dir, mail_loop_devices=devices)
    (lab.run_dir / "mailstore.json").write_text(json.dumps({"image": str(img), **devices}))
    return devices


def loop_device(run_dir: Path, node: str) -> str:
    """`node`'s loop device onto the image (each node has its own path to the store)."""
    return str(json.loads((run_dir / "mailstore.json").read_text())[node])


def attached(img: Path) -> list[str]:
    """Loop devices whose backing file is `img` (`losetup -j`)."""
    if not img.exists():
        return []
    p = subprocess.run(["losetup", "-j", str(img)], capture_output=True, text=True, timeout=10)
    return [line.split(":", 1)[0] for line in p.stdout.splitlines() if line.strip()]


def release(img: Path, timeout: float = 15.0) -> bool:
    """Detach every loop device of `img`; True once none is left.

    Call it after the lab's processes are dead: their mount namespaces go with
    them, the kernel unmounts, and a detach requested while still mounted
    (`losetup -d` sets autoclear) completes at that moment.
    """
    deadline = time.monotonic() + timeout
    while True:
        devices = attached(img)
        if not devices:
            return True
        for dev in devices:
            subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=10)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def fsck(img: Path) -> dict[str, Any]:
    """e2fsck -f -n on the released image: {ok, exit, output}. Any error is a violation."""
    if attached(img):
        return {"ok": False, "exit": None, "output": "still attached to a loop device: not judged"}
    p = subprocess.run(
        ["e2fsck", "-f", "-n", str(img)], capture_output=True, text=True, timeout=120
    )
    return {"ok": p.returncode == 0, "exit": p.returncode, "output": (p.stdout + p.stderr)[-3000:]}


def release_registered(info: dict[str, Any]) -> None:
    """cleanup's hook: release the loop devices of a dead lab's image (never anyone else's)."""
    img = info.get("mail_image")
    if isinstance(img, str) and img.endswith("/" + IMAGE):
        release(Path(img), timeout=5.0)
        remove_short_dir(str(info.get("prefix", "")))
