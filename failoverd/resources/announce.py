"""Running a short command only until it reports what we wait for (the VIP's arping).

arping's gratuitous ARP is on the wire when it prints its statistics, yet the
process lives ~40 ms longer: closing libpcap's packet sockets waits for the
kernel (strace: sendto, write, exit_group, then 39 ms until the exit). The
promotion only needs the packet sent, so the caller returns at the report and a
reaper thread lets the process finish, still bounded by the same deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

MAX_OUTPUT = 4096  # a report comes within a few lines; the rest is not kept


@dataclass(frozen=True)
class Reported:
    returncode: int | None  # None: still running (reported) or killed at the deadline
    output: str
    reported: bool = False  # `reported` matched before the process exited
    timed_out: bool = False
    error: str = ""  # why it could not be executed at all


def run_until_reported(argv: Sequence[str], timeout: float, reported: re.Pattern[str]) -> Reported:
    """Run argv until its output matches `reported`, it exits, or `timeout` passes;
    never raises. A process that reported is reaped in the background (killed, with
    its process group, at the deadline); one that timed out is killed here."""
    deadline = time.monotonic() + max(timeout, 0.0)
    try:
        proc = subprocess.Popen(
            tuple(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its whole group can be killed at the deadline
            close_fds=True,
        )
    except OSError as e:
        return Reported(None, "", error=str(e))
    assert proc.stdout is not None
    out = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break  # EOF: it exited (or closed its output); wait for it below
            out += chunk[: max(0, MAX_OUTPUT - len(out))]
            text = out.decode("utf-8", "replace")
            if reported.search(text):
                threading.Thread(
                    target=_reap, args=(proc, deadline), name="announce-reaper", daemon=True
                ).start()
                return Reported(None, text, reported=True)
    text = out.decode("utf-8", "replace")
    try:
        rc = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(proc)
        return Reported(None, text, timed_out=True)
    finally:
        proc.stdout.close()
    return Reported(rc, text)


def _reap(proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Drain (so it never blocks on a full pipe) and wait; kill at the deadline."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if sel.select(left) and not os.read(proc.stdout.fileno(), 4096):
                break
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(proc)
    finally:
        proc.stdout.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2.0)  # one in D state is left to the kernel, not waited on
