"""cgroup v1 faults on lab processes: the freezer (a whole node stalls like a VM) and
the CPU quota (a starved daemon).

Groups live under /sys/fs/cgroup/<controller>/failoverd-chaos/<lab prefix>-<name>, so
the lab's teardown and `python -m chaos cleanup` find and remove them by prefix. A
frozen (v1) task does not die of SIGKILL until it is thawed: anything that kills lab
processes (power switch, teardown) must thaw first — `release` does both orders right.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

BASE = "failoverd-chaos"


def _root() -> Path:
    """The cgroup v1 hierarchy. `ip netns exec` mounts a fresh /sys without it (the power
    switch runs that way, from the fencer's namespace): then reach it through the root
    directory of the nearest ancestor that sees it (the runner)."""
    here = Path("/sys/fs/cgroup")
    pid = os.getpid()
    for _ in range(12):
        if (here / "freezer").exists():
            return here
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        if pid <= 1:
            break
        here = Path(f"/proc/{pid}/root/sys/fs/cgroup")
    return Path("/sys/fs/cgroup")


ROOT = _root()


def available(controller: str) -> bool:
    return (ROOT / controller / "cgroup.procs").exists()


def group(controller: str, name: str) -> Path:
    return ROOT / controller / BASE / name


def add(controller: str, name: str, pids: list[int]) -> Path:
    """Create the group (if needed) and move `pids` (whole processes) into it."""
    g = group(controller, name)
    g.mkdir(parents=True, exist_ok=True)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, OSError):
            (g / "cgroup.procs").write_text(f"{pid}\n")
    return g


def freeze(name: str, pids: list[int], timeout: float = 5.0) -> None:
    """Freeze `pids` together and wait until the kernel says FROZEN."""
    g = add("freezer", name, pids)
    (g / "freezer.state").write_text("FROZEN\n")
    deadline = time.monotonic() + timeout
    while (g / "freezer.state").read_text().strip() != "FROZEN":
        if time.monotonic() > deadline:
            raise TimeoutError(f"cgroup {g} not FROZEN after {timeout}s")
        time.sleep(0.01)


def thaw(name: str) -> None:
    g = group("freezer", name)
    if g.exists():
        (g / "freezer.state").write_text("THAWED\n")


def cpu_quota(name: str, pids: list[int], fraction: float, period_us: int = 100_000) -> None:
    """Limit `pids` to `fraction` of one core (cpu.cfs_quota_us / cpu.cfs_period_us)."""
    g = add("cpu", name, pids)
    (g / "cpu.cfs_period_us").write_text(f"{period_us}\n")
    (g / "cpu.cfs_quota_us").write_text(f"{max(1000, int(period_us * fraction))}\n")


def unlimit(name: str) -> None:
    g = group("cpu", name)
    if g.exists():
        (g / "cpu.cfs_quota_us").write_text("-1\n")


def release(prefix: str) -> list[str]:
    """Thaw and remove every group of a lab (`prefix`-*): its processes go back to the root."""
    removed = []
    for controller in ("freezer", "cpu"):
        base = ROOT / controller / BASE
        for g in sorted(base.glob(f"{prefix}-*")) if base.exists() else []:
            if controller == "freezer":
                with contextlib.suppress(OSError):
                    (g / "freezer.state").write_text("THAWED\n")
            else:
                with contextlib.suppress(OSError):
                    (g / "cpu.cfs_quota_us").write_text("-1\n")
            _empty(g, ROOT / controller)
            with contextlib.suppress(OSError):
                os.rmdir(g)
                removed.append(str(g))
    return removed


def _empty(g: Path, root: Path) -> None:
    try:
        pids = (g / "cgroup.procs").read_text().split()
    except OSError:
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            (root / "cgroup.procs").write_text(f"{pid}\n")
