"""The mail store full (scenario 31): the shared store has no space left.

A full store is not a node failure: both nodes reach the same store, so a
standby taking over would find it just as full. What an operator expects
instead is what a well-behaved MTA does on a full queue/mailbox filesystem:
answer a temporary failure (452 4.3.1 insufficient system storage, or any 4xx)
so the sender keeps the message and retries; never 250 for a message it did not
store; no failover (and certainly no flapping); delivery resumes once space is
freed.

* toy service: the file `store/.full` makes every store write fail with ENOSPC
  before a byte lands (chaos/services/toy_store.py); the service answers 452.
* `--mail postfix`: the ext4 store image is really filled — a file written with
  dd until ENOSPC, as root, so the reserved blocks go too — inside the node's
  own mount namespace (only the active has the store mounted). Postfix's smtpd
  then answers 452 (free space below 1.5 x message_size_limit), and what is
  already queued stays deferred in the queue on the store. The heal deletes the
  file.
"""

from __future__ import annotations

import subprocess

from chaos.faults.nemesis import Heal
from chaos.lab.cluster import Cluster
from chaos.layout import mount_dir
from chaos.services.toy_store import FULL

FILL = ".chaos-fill"


def store_full(c: Cluster, node: str) -> Heal:
    """Fill the store as `node` sees it (the active: the one that has it mounted)."""
    if not c.nodes[node].mail:
        flag = c.run_dir / "store" / FULL
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text("full\n")
        c.lab.record("store_full", node=node, how="toy: every write fails with ENOSPC")

        def heal_toy() -> None:
            flag.unlink(missing_ok=True)
            c.lab.record("store_freed", node=node)

        return heal_toy
    return _fill_image(c, node)


def _fill_image(c: Cluster, node: str) -> Heal:
    n = c.nodes[node]
    store = mount_dir(c.run_dir)
    fill = store / FILL

    def inside(argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(n.machine_argv(argv), capture_output=True, text=True, timeout=timeout)

    if inside(["mountpoint", "-q", str(store)]).returncode != 0:
        raise RuntimeError(f"the mail store {store} is not mounted on {node}: nothing to fill")
    # dd ends with "No space left on device" (exit 1): that is the point.
    dd = inside(["dd", "if=/dev/zero", f"of={fill}", "bs=1M", "conv=fsync"])
    free = _free_bytes(inside(["stat", "-f", "-c", "%a %S", str(store)]).stdout)
    c.lab.record(
        "store_full",
        node=node,
        how="ext4 image filled",
        free_bytes=free,
        dd=dd.stderr.strip().splitlines()[-1:] or [""],
    )
    if free is None or free > 1 << 20:
        raise RuntimeError(f"filling {store} on {node} left {free} bytes free: {dd.stderr[-200:]}")

    def heal_image() -> None:
        inside(["rm", "-f", str(fill)])
        after = _free_bytes(inside(["stat", "-f", "-c", "%a %S", str(store)]).stdout)
        c.lab.record("store_freed", node=node, free_bytes=after)

    return heal_image


def _free_bytes(stat_out: str) -> int | None:
    try:
        avail, size = (int(w) for w in stat_out.split())
    except ValueError:
        return None
    return avail * size
