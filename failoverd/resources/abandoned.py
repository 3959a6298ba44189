"""Operations this node gave up on: why such a node is not clean.

A resource start or stop that ran past its timeout is abandoned: its process
group is killed and its worker thread left behind. But it may still finish: a
mount stuck in D state, a script that setsid'ed a helper before it hung, a
half-done `ip addr`. A node that calls itself clean then lets the next active
skip fencing while the abandoned start completes next to it. So, until every
process of the operation is confirmed gone, this node

* never writes `clean: true` and does not contend (Observation.dirty),
* holds its fence lock, so that `fence-self` on this node fails and the peer
  falls through to a stronger method: this node's own "stop everything" is
  exactly what cannot be trusted now (failoverd/fencing/marker.py explains the lock).
  A start given up on hands over the lock it was started under (adopt_fence_lock):
  it is never free between the start and the end of the quiet period;
* stops petting its watchdog device (failoverd/node/daemon.py), so the machine
  resets within watchdog.timeout, as a peer's lease-wait fencing assumes: the
  peer cannot see that this node is unclean, only wait;
* keeps sweeping: every process still carrying the operation's tag, or left in
  the daemon's service cgroup (below), is killed, every resource is stopped
  again, and its status must say stopped.

"Confirmed gone" means: the abandoned worker thread finished, no process
carrying the operation's tag is left (that is the command's whole process
group and anything it setsid'ed that kept its environment, and under systemd
whatever else is left in the service's cgroup), every resource's
status says stopped, and all of that held for the operation's own timeout (a
helper that cleared its environment is caught when its service comes up, by
the status check, before the quiet period ends).

Every resource command runs with FAILOVERD_OPERATION=<tag> in its environment, a
fresh random tag per operation; children inherit it, setsid or not, and
/proc/<pid>/environ shows it to root. But not always: under the shipped unit the
daemon lacks CAP_SYS_PTRACE, so it cannot read the environment of a process that
changed its uid (a mail daemon dropping to its own user), and a helper may clear
its environment. So, when the daemon runs as a systemd service, the sweep also
goes by the service's cgroup (/proc/<pid>/cgroup is world-readable): every
command the daemon runs lives in it, and nothing lives there that the daemon did
not start (but for a moment systemd's ExecReload=), so a process in it that is
neither the daemon nor part of a command it is running right now (a child, or
the session a child leads: health checks, hooks) is left over. Outside that
cgroup only the tag kills: a process carrying an operation's random tag is that
operation's, wherever it went. An unreadable record has no tag to go by (a fixed
stand-in would match any process that happens to carry it): the node stays
unclean and sweeps by the cgroup alone.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import signal
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from failoverd.resources.base import Resource, stop_all

log = structlog.get_logger(__name__)

OPERATION_ENV = "FAILOVERD_OPERATION"
SWEEP_INTERVAL = 0.5  # seconds between sweeps while something is abandoned
RECORD_FILE = "abandoned.json"
RECORD_VERSION = 1
UNKNOWN_TIMEOUT = 30.0  # quiet period for an operation whose record is unreadable
_TAG = re.compile(r"[0-9a-f]{16}")
UNKNOWN_KEY = "unreadable-record"  # the one operation of an unreadable record: no tag


def tagged(env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """A fresh operation tag and `env` carrying it."""
    tag = secrets.token_hex(8)
    return tag, {**env, OPERATION_ENV: tag}


def processes_tagged(tags: set[str], proc: str = "/proc") -> list[int]:
    """Pids of live processes whose environment carries one of `tags` (zombies
    show an empty environment: they are gone for our purpose). Only real tags
    count: nothing matches an empty or malformed one."""
    needles = {f"{OPERATION_ENV}={t}".encode() for t in tags if _TAG.fullmatch(t)}
    if not needles:
        return []
    return sorted(pid for pid in _pids(proc) if needles.intersection(_environ(proc, pid)))


def leftover_pids(tags: set[str], proc: str, cgroup: str | None, me: int) -> list[int]:
    """What the sweep kills: processes carrying one of `tags`, and, with the daemon's
    service `cgroup` known, every process in exactly that cgroup that is neither the
    daemon (`me`) nor part of a command it runs now (its child, or a process in the
    session such a child leads: every command gets a session of its own)."""
    tagged_now = set(processes_tagged(tags, proc))
    if cgroup is None:
        return sorted(tagged_now)
    stats = {pid: st for pid in _pids(proc) if (st := _stat(proc, pid)) is not None}
    children = {pid for pid, (_, ppid, _) in stats.items() if ppid == me}
    ours = {
        pid
        for pid, (state, ppid, sid) in stats.items()
        if state != "Z"
        and pid != me
        and pid not in children
        and sid not in children
        and _cgroup(proc, str(pid)) == cgroup
    }
    return sorted(tagged_now | ours)


def service_cgroup(
    proc: str = "/proc", env: Mapping[str, str] | None = None, parent: int | None = None
) -> str | None:
    """The daemon's own cgroup when it is the main process of a systemd service
    (started by PID 1, INVOCATION_ID set, its cgroup a `.service`), else None. Only
    then is everything in that cgroup the daemon's: run from a shell, a test or a
    CI runner's job, its cgroup holds what others run, and it must not be swept."""
    env = os.environ if env is None else env
    parent = os.getppid() if parent is None else parent
    if parent != 1 or not env.get("INVOCATION_ID"):
        return None
    path = _cgroup(proc, "self")
    return path if path and path.endswith(".service") else None


def _pids(proc: str) -> list[int]:
    return [int(e.name) for e in os.scandir(proc) if e.name.isdigit()]


def _environ(proc: str, pid: int) -> list[bytes]:
    try:
        with open(f"{proc}/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []  # exited meanwhile, a kernel thread, or another user's (no CAP_SYS_PTRACE)


def _stat(proc: str, pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) from /proc/PID/stat (world-readable)."""
    try:
        with open(f"{proc}/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1]), int(fields[3])
    except (OSError, IndexError, ValueError):
        return None


def _cgroup(proc: str, pid: str) -> str | None:
    """The process's cgroup path: the unified hierarchy's, or under cgroup v1 the
    name=systemd one (which names the unit). None when it cannot be read."""
    try:
        with open(f"{proc}/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found = {}
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        found[controllers] = path
    return found.get("name=systemd") or found.get("")


@dataclass
class Operation:
    tag: str  # "" for the operation of an unreadable record: there is none to go by
    what: str  # "resources[0].start"
    timeout: float  # the operation's own bound: also its quiet period
    worker: Future[Any] | None  # the thread left running, None if it returned
    since: float


class AbandonedWork:
    """`record`: a file in the state dir that keeps the abandoned operations across
    a restart of the daemon. A restart (systemd's watchdog, a crash loop) must not
    make an unclean node clean: its tagged leftovers are still out there."""

    def __init__(
        self,
        lock_path: Path,
        record: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        proc: str = "/proc",
        cgroup: str | None = None,  # the daemon's service cgroup (service_cgroup())
        pid: int | None = None,  # the daemon's pid (default: this process)
        kill: Callable[[int, int], None] = os.kill,
    ):
        self.lock_path = lock_path
        self.record = record
        self.clock = clock
        self.proc, self.cgroup, self.kill = proc, cgroup, kill
        self.pid = os.getpid() if pid is None else pid
        self.ops: dict[str, Operation] = {}
        self.problem = ""  # what the last sweep found, for status and logs
        self.clean_since: float | None = None
        self.next_sweep = 0.0
        self.sweeps = 0
        self._lock_fd: int | None = None
        self._restore()

    # -- the record in the state dir ----------------------------------------------

    def _restore(self) -> None:
        if self.record is None:
            return
        try:
            raw = self.record.read_bytes()
        except FileNotFoundError:
            return
        except OSError as e:
            raw = repr(e).encode()  # unreadable: the unsafe case below
        ops: list[tuple[str, str, float]] = []
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("v") != RECORD_VERSION:
                raise ValueError("not a version 1 record")
            for op in data["ops"]:
                tag, what, timeout = op["tag"], op["what"], float(op["timeout"])
                if not (isinstance(tag, str) and _TAG.fullmatch(tag) and isinstance(what, str)):
                    raise ValueError(f"bad operation {op!r}")
                if not 0 < timeout < 86400:
                    raise ValueError(f"bad timeout {timeout!r}")
                ops.append((tag, what[:200], timeout))
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            # Garbage is the unsafe case: something was abandoned, we cannot tell what.
            log.error("abandoned_record_unreadable", path=str(self.record), error=str(e))
            # No tag to go by: the sweep goes by the service cgroup alone (never a
            # fixed tag, which a bystander may carry), and the node stays unclean.
            ops = [(UNKNOWN_KEY, "operation (unreadable record)", UNKNOWN_TIMEOUT)]
        now = self.clock()
        for key, what, timeout in ops:
            tag = "" if key == UNKNOWN_KEY else key
            self.ops[key] = Operation(tag, what, timeout, None, now)
        if self.ops:
            self.problem = "abandoned before failoverd restarted"
            log.critical(
                "abandoned_operations_restored",
                operations=sorted(op.what for op in self.ops.values()),
                hint="unclean since before the restart: not contending until they are gone",
            )

    def _save(self) -> None:
        if self.record is None:
            return
        # An operation without a tag (from an unreadable record) is saved as nothing
        # readable either: the record stays unreadable, and so the node unclean.
        ops = [{"tag": o.tag, "what": o.what, "timeout": o.timeout} for o in self.ops.values()]
        try:
            if not ops:
                self.record.unlink(missing_ok=True)
                return
            fd, tmp = tempfile.mkstemp(prefix=".abandoned.", dir=self.record.parent)
            with os.fdopen(fd, "w") as f:
                json.dump({"v": RECORD_VERSION, "ops": ops}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.record)
        except OSError as e:
            log.error("abandoned_record_not_written", path=str(self.record), error=str(e))

    @property
    def pending(self) -> bool:
        return bool(self.ops)

    def add(self, tag: str, what: str, timeout: float, worker: Future[Any] | None) -> None:
        self.ops[tag] = Operation(tag, what, timeout, worker, self.clock())
        self.clean_since = None
        self.sweeps = 0
        self._save()
        self.problem = f"{what} was abandoned after {timeout:g}s"
        log.critical(
            "operation_abandoned",
            operation=what,
            timeout=timeout,
            worker_running=worker is not None and not worker.done(),
            hint="this node is unclean: it will not contend or mark itself clean until "
            "every process of the operation is gone; the next active fences it",
        )

    def reason(self) -> str:
        whats = ", ".join(sorted({op.what for op in self.ops.values()}))
        return f"unclean: abandoned {whats}" + (f" ({self.problem})" if self.problem else "")

    @property
    def stuck(self) -> bool:
        """Sweeping has not made progress (processes survive SIGKILL, a worker or a
        stop hangs): the node stops petting the watchdog, the last escalation."""
        return self.pending and self.sweeps >= 2 and self.clean_since is None

    # -- the fence lock ------------------------------------------------------

    def hold_fence_lock(self) -> bool:
        """Take the fence lock and keep it until confirmed (non-blocking: a fence-self
        running right now finishes first, and the next sweep tries again)."""
        if self._lock_fd is not None:
            return True
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            log.error("fence_lock_unavailable", path=str(self.lock_path), error=str(e))
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def adopt_fence_lock(self, fd: int) -> None:
        """Keep holding the fence lock through `fd`, a descriptor that already holds it
        (FenceMarker.held's HeldLock.keep()): taken over, never released in between,
        so fence-self cannot slip in while a start is being given up on."""
        if self._lock_fd is None:
            self._lock_fd = fd
        else:  # cannot happen: two descriptors of this process cannot both hold it
            os.close(fd)

    def release_fence_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    # -- sweeping ------------------------------------------------------------

    def kill_leftovers(self, by_cgroup: bool = True) -> int:
        """SIGKILL every process left of an abandoned operation: carrying its tag, or
        in the daemon's service cgroup without being part of a running command.

        `by_cgroup=False`: by tag only. The demotion asks so before its orderly stop:
        the services that started fine (a daemon a `command` resource launched lives
        in our cgroup) are stopped by their stop commands, not killed; the sweeps
        that follow, after that stop, take the whole cgroup."""
        tags = {op.tag for op in self.ops.values()}
        pids = leftover_pids(tags, self.proc, self.cgroup if by_cgroup else None, self.pid)
        for pid in pids:
            try:
                self.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if pids:
            log.warning("abandoned_processes_killed", pids=pids)
        return len(pids)

    def sweep(self, resources: Sequence[Resource], env: Mapping[str, str]) -> bool:
        """One round towards "confirmed gone" (blocking: run it on the worker).
        True once the node is clean again."""
        self.sweeps += 1
        self.hold_fence_lock()
        problem = self._find_problem(resources, env)
        now = self.clock()
        if problem:
            if problem != self.problem:
                log.warning("abandoned_operation_not_gone", problem=problem)
            self.problem, self.clean_since = problem, None
            return False
        if self.clean_since is None:
            self.clean_since = now
        quiet = max(op.timeout for op in self.ops.values())
        if now - self.clean_since < quiet:
            self.problem = f"everything stopped; watching {quiet:g}s for late starters"
            return False
        log.warning(
            "abandoned_operations_gone",
            operations=sorted(op.what for op in self.ops.values()),
            hint="this node may contend again",
        )
        self.ops.clear()
        self._save()
        self.problem, self.clean_since = "", None
        self.release_fence_lock()
        return True

    def _find_problem(self, resources: Sequence[Resource], env: Mapping[str, str]) -> str:
        busy = [op.what for op in self.ops.values() if op.worker and not op.worker.done()]
        if busy:
            return f"the abandoned {', '.join(busy)} is still running"
        killed = self.kill_leftovers()
        if killed:
            return f"{killed} process(es) of the abandoned operation were still there"
        if self._lock_fd is None:
            return "cannot hold the fence lock"
        # Status first: a resource found running again (a helper that dropped our
        # tag brought it up late) restarts the quiet period; then stop it again.
        states = {r.name: r.is_running(env) for r in resources}
        if all(state is False for state in states.values()):
            return ""
        failures = stop_all(resources, env)
        seen = "; ".join(
            f"{name} status says {'running' if state else 'unknown'}"
            for name, state in states.items()
            if state is not False
        )
        return seen + ("; stop failed: " + "; ".join(failures) if failures else "; stopped again")
