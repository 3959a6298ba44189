"""Running a command with a hard deadline: resources, fencing, health checks and OCF
agents all start programs through run_command.

The command gets its own session and its output goes to a file, so that at the
deadline everything it started can be killed at once and a daemon it launched on
purpose cannot hold us on a pipe. A leaf module: it imports nothing of failoverd
but the logger that `fence-self` can afford (failoverd/observe/fastlog.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from failoverd.observe import fastlog

log = fastlog.get_logger(__name__)  # no structlog in fence-self

TAIL_BYTES = 4096  # how much of a command's output we keep for the error message
TAIL_CHARS = 400


@dataclass(frozen=True)
class CommandOutcome:
    argv: tuple[str, ...]
    returncode: int | None  # None: it did not run to completion
    output: str  # tail of stdout+stderr
    timed_out: bool = False
    error: str = ""  # why it could not be executed at all
    timeout: float = 0.0
    cause: str = ""  # `error` without the program's name, e.g. "No such file or directory"

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def summary(self) -> str:
        """How it ended, and nothing of what it ran or said: 'exited with 3', 'timed out
        after 30s', 'could not run: No such file or directory'. Fit to leave the node:
        a command line or its output may hold a password."""
        if self.error:
            return f"could not run: {self.cause or 'cannot execute'}"
        if self.timed_out:
            return f"timed out after {self.timeout:g}s"
        return f"exited with {self.returncode}"

    def describe(self) -> str:
        """One sentence for the local log: '`x y` exited with 3: <tail>'. It holds
        the command line and its output: never for what leaves the node (summary)."""
        cmd = " ".join(self.argv)
        if self.error:
            return f"`{cmd}` could not run: {self.error}"
        if self.timed_out:
            what = f"`{cmd}` timed out after {self.timeout:g}s"
        else:
            what = f"`{cmd}` exited with {self.returncode}"
        tail = " | ".join(self.output.strip().splitlines()[-3:])
        return f"{what}: {tail}" if tail else what

    def last_line(self) -> str:
        lines = self.output.strip().splitlines()
        return lines[-1][:200] if lines else ""


# Health checks and fence-readiness probes run below the daemon's own CPU
# priority. They are the daemon's children, so they share its cgroup (its CPU
# quota under systemd's CPUQuota= or a noisy host), and a Python check costs
# ~33 ms of CPU in one burst, which at 5 % of a core holds the cgroup
# throttled for about half a second. Niceness only weighs runnable tasks
# against each other: an idle daemon leaves the check all the CPU it had
# before. It does not unthrottle a cgroup: chaos scenario 29 was fixed by
# checks that fork nothing (health.py PathCheck), see
# docs/benchmarks.md, "A forked check's CPU is the daemon's CPU".
BACKGROUND_NICE = 10
_NICE = "/usr/bin/nice" if os.access("/usr/bin/nice", os.X_OK) else shutil.which("nice")


def in_background(argv: Sequence[str]) -> list[str]:
    """argv run at BACKGROUND_NICE (exactly from exec on: no window at full priority)."""
    return [_NICE, "-n", str(BACKGROUND_NICE), *argv] if _NICE else list(argv)


def run_command(
    argv: Sequence[str], env: Mapping[str, str], timeout: float, background: bool = False
) -> CommandOutcome:
    """Run argv to completion within timeout seconds; never raises.

    `background`: a check, not a step of a takeover or demotion (in_background).

    Output goes to an unlinked temporary file, not a pipe: a start command that
    launches a daemon hands it our stdout, and waiting for EOF on a pipe would
    wait for the daemon to exit. The command gets its own session so that on
    timeout we can kill everything it started (its process group) at once; on
    normal exit the group is left alone, since it may hold the daemon we wanted.
    """
    args = tuple(argv)
    full_env = {**os.environ, **env}
    if background and args and shutil.which(args[0], path=full_env.get("PATH")) is None:
        # Run through nice, a missing program would read "exit 127"; say what it is.
        errno_text = (
            "[Errno 13] Permission denied"
            if os.path.exists(args[0])
            else ("[Errno 2] No such file or directory")
        )
        cause = errno_text.split("] ", 1)[1]
        return CommandOutcome(args, None, "", error=f"{errno_text}: {args[0]!r}", cause=cause)
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                in_background(args) if background else args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=full_env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            cause = e.strerror or type(e).__name__
            return CommandOutcome(args, None, "", error=str(e), cause=cause)
        try:
            rc: int | None = proc.wait(timeout=max(timeout, 0.0))
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            rc, timed_out = None, True
        return CommandOutcome(args, rc, _tail(out), timed_out=timed_out, timeout=timeout)


# How long to wait for a SIGKILLed command to exit. A process in uninterruptible
# sleep (D state: a hung mount, dead NFS) does not die until the kernel call
# returns; the caller must not hang with it. It is reported timed out, and the
# daemon treats what is left as an abandoned operation.
KILL_WAIT = 2.0


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=KILL_WAIT)
    except subprocess.TimeoutExpired:
        log.critical("command_unkillable", pid=proc.pid, argv=str(proc.args))


def _tail(out: IO[bytes]) -> str:
    size = out.seek(0, os.SEEK_END)
    out.seek(max(0, size - TAIL_BYTES))
    return out.read().decode("utf-8", "replace")[-TAIL_CHARS:]
