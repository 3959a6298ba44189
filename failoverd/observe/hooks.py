"""Role-change hooks: programs the operator configures to run after a
transition, e.g. to page someone or post to syslog.

    hooks: [{on: [promoted, demoted, fenced, fence_failed, stop_failed, flap_limit,
                  fence_path_lost], argv: [...], timeout: 10s}]

A hook can never block or reverse a transition:
* fire() only appends to a bounded queue and returns at once; when the queue is
  full the event is dropped with a warning (a pager storm must not grow memory or
  stall the loop that keeps the lease);
* one worker thread runs the hooks in the order their events happened, one at a
  time, each in its own process group with stdin closed, and kills the whole group
  at the hook's timeout (a hook that forks a helper cannot outlive its timeout);
* a failure is logged, nothing else: the transition already happened.

Hooks get FAILOVERD_EVENT, FAILOVERD_NODE, FAILOVERD_CLUSTER, FAILOVERD_EPOCH
("" when there is none), FAILOVERD_REASON (redacted; a failed resource is named by
its config key path, `resources[2].start`, never its command line) and, for events
about a peer (fenced, fence_failed, fence_path_lost), FAILOVERD_PEER. The reason is
free text and may hold control characters: a hook encodes it for where it sends it.
A NUL, which no argv or environment can carry, arrives as the four characters
`\\x00` (logged as hook_value_made_safe); the hook still runs.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from failoverd.config import HookConfig
from failoverd.observe.redact import redact

log = structlog.get_logger(__name__)

# Events waiting to run their hooks. Transitions are rare; this many pending
# means the hooks are far slower than the cluster, and older news is enough.
QUEUE_SIZE = 64
OUTPUT_TAIL = 400  # characters of a hook's output kept in the log line


# systemd's channels to the daemon itself: a hook that inherited them could send
# READY/WATCHDOG=1 on the daemon's behalf (petting a watchdog the daemon stopped
# petting on purpose) or take its socket-activated fds.
_DAEMON_ONLY = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


@dataclass(frozen=True)
class HookEvent:
    event: str
    epoch: int | None
    reason: str
    peer: str | None


_STOP = HookEvent("", None, "", None)  # tells the worker to finish


class HookRunner:
    def __init__(
        self,
        hooks: Sequence[HookConfig],
        cluster: str,
        node: str,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.hooks = tuple(hooks)
        self.cluster, self.node = cluster, node
        self.pending: queue.Queue[HookEvent] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._running: subprocess.Popen[bytes] | None = None
        self.dropped = 0

    # -- the daemon's side -------------------------------------------------------

    def start(self) -> None:
        if self._thread is None and self.hooks:
            self._thread = threading.Thread(target=self._work, name="hooks", daemon=True)
            self._thread.start()

    def fire(
        self, event: str, *, epoch: int | None = None, reason: str = "", peer: str | None = None
    ) -> None:
        """Queue `event` for the hooks that subscribe to it. Never blocks."""
        if not any(event in h.events for h in self.hooks):
            return
        try:
            self.pending.put_nowait(HookEvent(event, epoch, reason, peer))
        except queue.Full:
            self.dropped += 1
            log.warning("hook_dropped", hook_event=event, queued=self.pending.qsize())

    def stop(self, grace: float = 5.0) -> None:
        """Let queued hooks run for up to `grace` seconds, then kill what still runs."""
        if self._thread is None:
            return
        deadline = time.monotonic() + grace
        while True:
            try:
                self.pending.put(_STOP, timeout=0.05)
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        running = self._running
        if self._thread.is_alive() and running is not None:
            _kill_group(running)

    # -- the worker --------------------------------------------------------------

    def _work(self) -> None:
        while True:
            ev = self.pending.get()
            if ev is _STOP:
                return
            for hook in self.hooks:
                if ev.event in hook.events:
                    try:
                        self._run(hook, ev)
                    except Exception:  # noqa: BLE001 - the worker must survive any hook
                        log.exception("hook_failed", hook_event=ev.event, argv=list(hook.argv))

    def env(self, ev: HookEvent) -> dict[str, str]:
        env = {
            **os.environ,
            "FAILOVERD_EVENT": ev.event,
            "FAILOVERD_NODE": self.node,
            "FAILOVERD_CLUSTER": self.cluster,
            "FAILOVERD_EPOCH": "" if ev.epoch is None else str(ev.epoch),
            # Redacted like the member znode: hooks send it on to pagers and chat
            # (the safety net; resources/base.py keeps command lines out of it).
            "FAILOVERD_REASON": redact(ev.reason),
        }
        env.pop("FAILOVERD_PEER", None)
        for name in _DAEMON_ONLY:
            env.pop(name, None)
        if ev.peer is not None:
            env["FAILOVERD_PEER"] = ev.peer
        return env

    def _run(self, hook: HookConfig, ev: HookEvent) -> None:
        started = time.monotonic()
        argv, env, made_safe = _made_safe(hook.argv, self.env(ev))
        if made_safe:  # the hook still runs: its news matters more than one byte
            log.warning("hook_value_made_safe", hook_event=ev.event, names=made_safe)
        # Output to a file, not a pipe: a helper the hook left behind could hold a
        # pipe open and make reading it hang.
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, killed as a whole
                    close_fds=True,
                )
            except (OSError, ValueError) as e:
                log.error("hook_failed", hook_event=ev.event, argv=list(hook.argv), error=str(e))
                return
            self._running = proc
            try:
                code: int | None = proc.wait(timeout=hook.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                code = None
            finally:
                self._running = None
            out.seek(0)
            output = out.read().decode(errors="replace").strip()[-OUTPUT_TAIL:]
        took_ms = round((time.monotonic() - started) * 1000)
        what = {"hook_event": ev.event, "argv": list(hook.argv), "took_ms": took_ms}
        if code is None:
            log.error("hook_timed_out", timeout=hook.timeout, output=output, **what)
        elif code != 0:
            log.error("hook_failed", exit_code=code, output=output, **what)
        else:
            log.info("hook_finished", output=output, **what)


def _made_safe(
    argv: Sequence[str], env: dict[str, str]
) -> tuple[list[str], dict[str, str], list[str]]:
    """argv and env with each NUL written as the four characters `\\x00`, and the
    names of what changed. A NUL cannot cross exec (C strings end there), and
    subprocess refuses the whole call on one: a reason that quotes a peer's output
    must not cost the operator the page. Other control characters pass as they are:
    they are legal here, and each hook encodes for where it sends them."""
    changed: list[str] = []
    safe_argv = []
    for i, word in enumerate(argv):
        if "\x00" in word:
            changed.append(f"argv[{i}]")
            word = word.replace("\x00", "\\x00")
        safe_argv.append(word)
    safe_env = {}
    for name, value in env.items():
        if "\x00" in value:
            changed.append(name)
            value = value.replace("\x00", "\\x00")
        safe_env[name] = value
    return safe_argv, safe_env, changed


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        log.error("hook_unkillable", pid=proc.pid)  # stuck in the kernel (D state)


# -- one runner per process, for code that has no daemon at hand -----------------

_installed: HookRunner | None = None


def install(runner: HookRunner | None) -> None:
    global _installed
    _installed = runner


def fire(event: str, **ctx: object) -> None:
    """Queue `event` (keywords: epoch, reason, peer) on the daemon's hook runner;
    nothing happens when no daemon runs in this process. Never blocks."""
    runner = _installed
    if runner is not None:
        runner.fire(event, **ctx)  # type: ignore[arg-type]
