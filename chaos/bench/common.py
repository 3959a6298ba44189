"""Small shared pieces of the benchmark: statistics, /proc sampling, ZooKeeper reads.

Everything here is measurement plumbing; the cases live in lab_cases.py,
keepalived.py, footprint.py and scale.py, and suite.py ties them together.
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# -- statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: with 20 samples p95 is the 19th)."""
    s = sorted(values)
    k = max(1, math.ceil(q / 100 * len(s)))
    return s[k - 1]


def summary(values: Sequence[float | None]) -> dict[str, Any]:
    """n, median, p95, max of the measured values; `missing` counts None (never recovered)."""
    got = [float(v) for v in values if v is not None]
    out: dict[str, Any] = {"n": len(values), "missing": len(values) - len(got)}
    if got:
        out.update(
            median=round(statistics.median(got), 3),
            p95=round(percentile(got, 95), 3),
            max=round(max(got), 3),
            min=round(min(got), 3),
        )
    return out


# -- processes --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcSample:
    t: float  # time.monotonic()
    cpu: float  # own user+system seconds
    children_cpu: float  # user+system seconds of children it waited for
    rss_kb: int  # VmRSS: resident pages, shared libraries included
    rss_anon_kb: int  # RssAnon: the process's own heap and stacks


def sample(pid: int) -> ProcSample | None:
    """One reading of /proc/PID (None when the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    f = stat.rsplit(")", 1)[1].split()
    # Fields after the command: state=0 ... utime=11 stime=12 cutime=13 cstime=14.
    cpu = (int(f[11]) + int(f[12])) / CLK_TCK
    children = (int(f[13]) + int(f[14])) / CLK_TCK
    fields = {
        x.split(":")[0]: x.split()[1]
        for x in status.splitlines()
        if x.startswith(("VmRSS", "RssAnon"))
    }
    rss, anon = int(fields.get("VmRSS", 0)), int(fields.get("RssAnon", 0))
    return ProcSample(time.monotonic(), cpu, children, rss, anon)


def cpu_share(a: ProcSample, b: ProcSample) -> float:
    """Percent of one core used between two samples."""
    return 100.0 * (b.cpu - a.cpu) / max(1e-9, b.t - a.t)


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def reap(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 5.0) -> None:
    """SIGKILL (after SIGCONT) and wait for processes we started."""
    for p in procs:
        if p.poll() is None:
            kill_pid(p.pid, signal.SIGCONT)
            kill_pid(p.pid)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


def wait_until(pred: Any, timeout: float, interval: float = 0.1) -> Any:
    """Poll pred() until it is truthy (return it) or `timeout` passes (return None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(interval)


# -- ZooKeeper ---------------------------------------------------------------------------


def start_ensemble(workdir: Path, attempts: int = 3) -> Any:
    """A started three-server loopback ensemble. Its ports are picked free and then
    released, so another process may take one before ZooKeeper binds it (the server
    then exits): retry with fresh ports."""
    from tests.support.zookeeper import Ensemble

    for k in range(attempts):
        ensemble = Ensemble.on_loopback(workdir / f"zk-{k + 1}")
        try:
            ensemble.start()
            return ensemble
        except (RuntimeError, TimeoutError):
            ensemble.stop()
            if k + 1 == attempts:
                raise
            log(f"ZooKeeper ensemble did not start (attempt {k + 1}); retrying on fresh ports")
    raise AssertionError("unreachable")


# -- ZooKeeper four-letter words ---------------------------------------------------------


def cons_packets(text: str) -> dict[int, tuple[int, int]]:
    """`cons` output -> {client port: (packets received, packets sent)} per connection."""
    out: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("/") or "recved=" not in line:
            continue
        port = int(line.split("[", 1)[0].rsplit(":", 1)[1])
        fields = dict(
            kv.split("=", 1) for kv in line.split("(", 1)[1].rstrip(")").split(",") if "=" in kv
        )
        out[port] = (int(fields.get("recved", 0)), int(fields.get("sent", 0)))
    return out


def ports_of(pid: int, remote_ports: set[int]) -> set[int]:
    """Local TCP ports of `pid`'s connections to any of `remote_ports` (via ss -tnp)."""
    p = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=False)
    out: set[int] = set()
    for line in p.stdout.splitlines():
        if f"pid={pid}," not in line:
            continue
        cols = line.split()
        local, peer = cols[3], cols[4]
        if int(peer.rsplit(":", 1)[1]) in remote_ports:
            out.add(int(local.rsplit(":", 1)[1]))
    return out
