"""Network-namespace primitives the lab is built from.

Everything here acts on *named* namespaces (`/run/netns/NAME`) and never on the
root namespace's network: links are created directly inside lab namespaces, and
`inside()` switches only the calling thread (setns(2) on a network namespace is
per thread) so the runner can probe lab addresses without spawning a process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    pass


def sh(argv: Sequence[str], check: bool = True, timeout: float = 10.0) -> str:
    """Run a short command; return its stdout. Raises NetnsError with stderr on failure."""
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def listed() -> list[str]:
    """Every named namespace (`ip netns list` prints 'name (id: N)')."""
    return [line.split()[0] for line in sh(["ip", "netns", "list"]).splitlines() if line.strip()]


def add(ns: str) -> None:
    sh(["ip", "netns", "add", ns])
    sh(["ip", "-n", ns, "link", "set", "lo", "up"])


def delete(ns: str) -> None:
    if exists(ns):
        sh(["ip", "netns", "del", ns], check=False)


def pids(ns: str) -> list[int]:
    """Processes whose network namespace is `ns` (the lab's idea of 'on that machine')."""
    if not exists(ns):
        return []
    out = sh(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in out.split() if x.isdigit() and int(x) != os.getpid()]


def kill_all(ns: str, timeout: float = 5.0) -> int:
    """SIGKILL every process of `ns` (stopped ones too) and wait until none is left.

    Returns how many processes were killed. Zombies of our own children are reaped
    by their Popen owners; a pid that stays a zombie does not count as running.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids(ns) if _running(p)]
        if not alive:
            return len(killed)
        for p in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
                killed.add(p)
        if time.monotonic() > deadline:
            raise NetnsError(f"processes of {ns} survived SIGKILL: {alive}")
        time.sleep(0.02)


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    return _running(pid)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def exec_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def run_in(ns: str, argv: Sequence[str], check: bool = True, timeout: float = 10.0) -> str:
    return sh(exec_argv(ns, argv), check=check, timeout=timeout)


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """Run the body with this thread's network namespace set to `ns`.

    Sockets created in the body stay in `ns` for their whole life; other threads
    are unaffected. Used for probes (ZooKeeper four-letter words, SMTP) only.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(NETNS_DIR / ns, os.O_RDONLY)
    except OSError:
        os.close(own)
        raise
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"setns({ns}): {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                # Staying in a lab namespace is harmless for traffic (it cannot route
                # out) but would confuse later probes: fail loudly.
                raise NetnsError("could not return to the original network namespace")
    finally:
        os.close(own)
        os.close(target)
