"""Is this node able to serve mail? (Candidacy: only a healthy node contends.)

Every ``interval`` all checks run (concurrently, so one round takes as long as the
slowest check, not the sum); a round passes only if every check passed. Rounds
feed a hysteresis: ``rise`` passing rounds in a row make the node healthy, ``fall``
failing rounds in a row make it unhealthy. A busy service that still answers within
its timeout is healthy: a mail flood must not look like an outage.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import structlog

from failoverd.config import CheckConfig, HealthConfig
from failoverd.observe.redact import redact_argv
from failoverd.process import run_command

log = structlog.get_logger(__name__)

MAX_REPLY = 64 * 1024  # a banner longer than this is not a mail server talking
COURTESY = 0.5  # seconds granted to QUIT/LOGOUT once the verdict is made


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    took: float  # seconds


class Check(Protocol):
    name: str

    def run(self) -> CheckResult: ...


class CheckFailed(Exception):
    """Raised inside a check; becomes a failing CheckResult with this detail."""


# -- Network dialogues bounded by one deadline ---------------------------------------


class Dialogue:
    """A line-based TCP exchange in which every step shares one monotonic deadline,
    so the whole check (connect, banner, EHLO, ...) takes at most ``timeout``."""

    def __init__(self, host: str, port: int, timeout: float):
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.buf = b""
        # Host names are resolved outside the deadline; configure addresses.
        try:
            self.sock = socket.create_connection((host, port), timeout=self._remaining("connect"))
        except TimeoutError:
            raise CheckFailed(f"connect: timed out after {timeout:g}s") from None
        except OSError as e:
            raise CheckFailed(f"connect: {e.strerror or e}") from None

    def _remaining(self, step: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CheckFailed(f"{step}: timed out after {self.timeout:g}s")
        return left

    def courtesy(self, seconds: float) -> None:
        """Bound what is left of the exchange after the verdict (QUIT, LOGOUT)."""
        self.deadline = min(self.deadline, time.monotonic() + seconds)

    def send(self, step: str, line: str) -> None:
        try:
            self.sock.settimeout(self._remaining(step))
            self.sock.sendall(line.encode("ascii") + b"\r\n")
        except TimeoutError:
            raise CheckFailed(f"{step}: timed out after {self.timeout:g}s") from None
        except OSError as e:
            raise CheckFailed(f"{step}: {e.strerror or e}") from None

    def readline(self, step: str) -> str:
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_REPLY:
                raise CheckFailed(f"{step}: reply too long")
            try:
                self.sock.settimeout(self._remaining(step))
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise CheckFailed(f"{step}: timed out after {self.timeout:g}s") from None
            except OSError as e:
                raise CheckFailed(f"{step}: {e.strerror or e}") from None
            if not chunk:
                raise CheckFailed(f"{step}: connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def smtp_reply(self, step: str) -> tuple[str, str]:
        """(code, first line): reads a possibly multi-line '250-...' / '250 ...' reply."""
        first = ""
        while True:
            line = self.readline(step)
            first = first or line
            if len(line) < 4 or line[3] != "-":
                return line[:3], first

    def close(self) -> None:
        self.sock.close()


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + "..."


class SmtpCheck:
    def __init__(self, host: str, port: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self.name = f"smtp {host}:{port}"

    def probe(self) -> str:
        d = Dialogue(self.host, self.port, self.timeout)
        try:
            code, text = d.smtp_reply("banner")
            if code != "220":
                raise CheckFailed(f"banner: {_short(text)}")
            d.send("ehlo", "EHLO failoverd-health")
            code, text = d.smtp_reply("ehlo")
            if code != "250":
                raise CheckFailed(f"ehlo: {_short(text)}")
            # The verdict is made; QUIT is courtesy so the server logs a clean disconnect.
            d.courtesy(COURTESY)
            try:
                d.send("quit", "QUIT")
                d.smtp_reply("quit")
            except CheckFailed:
                pass
            return "banner 220, ehlo 250"
        finally:
            d.close()


class ImapCheck:
    def __init__(self, host: str, port: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self.name = f"imap {host}:{port}"

    def probe(self) -> str:
        d = Dialogue(self.host, self.port, self.timeout)
        try:
            greeting = d.readline("greeting")
            if not greeting.upper().startswith("* OK"):
                raise CheckFailed(f"greeting: {_short(greeting)}")
            d.courtesy(COURTESY)
            try:
                d.send("logout", "a1 LOGOUT")
                while not d.readline("logout").startswith("a1 "):
                    pass
            except CheckFailed:
                pass
            return _short(greeting)
        finally:
            d.close()


class TcpCheck:
    def __init__(self, host: str, port: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self.name = f"tcp {host}:{port}"

    def probe(self) -> str:
        Dialogue(self.host, self.port, self.timeout).close()
        return "connected"


class CommandCheck:
    def __init__(self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None):
        self.argv, self.timeout = tuple(argv), timeout
        self.env = dict(env or {})  # e.g. FAILOVERD_NODE, on top of os.environ
        self.name = "command " + redact_argv(self.argv)[:60]  # a metric label

    def probe(self) -> str:
        outcome = run_command(self.argv, self.env, self.timeout, background=True)
        last = outcome.last_line()
        if outcome.error:
            raise CheckFailed(f"could not run: {outcome.error}")
        if outcome.timed_out:
            raise CheckFailed(f"timed out after {self.timeout:g}s" + (f": {last}" if last else ""))
        if not outcome.ok:
            raise CheckFailed(f"exit {outcome.returncode}" + (f": {last}" if last else ""))
        return last or "exit 0"


class PathCheck:
    """Looks at a path from inside the daemon: no process is forked, so a node whose
    daemon is held to a small CPU quota is not starved by its own checks (chaos
    scenario 29: a forked Python check every second, ~33 ms of CPU each, kept a
    5 % quota throttled past the lease). The look runs on its own thread so that a
    hung file system (a dead NFS server leaves stat() in the kernel) fails the
    check after ``timeout`` instead of stalling every round; until that look
    returns, later rounds fail at once rather than piling up threads behind it."""

    def __init__(
        self,
        path: str,
        timeout: float,
        absent: bool = False,
        writable: bool = False,
        mountpoint: bool = False,
    ):
        self.path, self.timeout = path, timeout
        self.absent, self.writable, self.mountpoint = absent, writable, mountpoint
        wants = ["absent"] if absent else ["mountpoint"] * mountpoint + ["writable"] * writable
        self.name = f"path {path}" + (f" ({', '.join(wants)})" if wants else "")
        self._stuck: threading.Thread | None = None

    def probe(self) -> str:
        if self._stuck is not None and self._stuck.is_alive():
            raise CheckFailed("an earlier look has not returned yet (a hung file system?)")
        outcome: list[tuple[bool, str]] = []
        look = threading.Thread(
            target=lambda: outcome.append(self._look()), name="health-path", daemon=True
        )
        look.start()
        look.join(self.timeout)
        if not outcome:
            self._stuck = look
            raise CheckFailed(f"no answer from the file system in {self.timeout:g}s (hung?)")
        ok, detail = outcome[0]
        if not ok:
            raise CheckFailed(detail)
        return detail

    def _look(self) -> tuple[bool, str]:
        try:
            if self.absent:
                try:
                    os.lstat(self.path)
                except FileNotFoundError:
                    return True, "absent"
                return False, "exists (it must not)"
            os.stat(self.path)
            if self.mountpoint and not os.path.ismount(self.path):
                return False, "not a mount point (the file system is not mounted)"
            if self.writable and not os.access(self.path, os.W_OK):
                return False, "not writable (read-only file system or permissions)"
            return True, "mounted" if self.mountpoint else "present"
        except FileNotFoundError:
            return False, "does not exist"
        except OSError as e:  # EACCES, EIO, ESTALE...: cannot tell, so not healthy
            return False, f"cannot be examined: {e.strerror or e}"


class _Probe(Protocol):
    name: str

    def probe(self) -> str: ...


class TimedCheck:
    """Turns a probe (which raises CheckFailed) into a Check (which never raises)."""

    def __init__(self, probe: _Probe, scope: str = "always"):
        self.probe = probe
        self.name = probe.name
        self.scope = scope  # see CheckConfig.scope

    def run(self) -> CheckResult:
        started = time.monotonic()
        try:
            ok, detail = True, self.probe.probe()
        except CheckFailed as e:
            ok, detail = False, str(e)
        except Exception as e:  # a check must never take the monitor down
            ok, detail = False, f"internal error: {e!r}"
        return CheckResult(self.name, ok, detail, time.monotonic() - started)


def build_check(cfg: CheckConfig, env: Mapping[str, str] | None = None) -> Check:
    probe: _Probe
    if cfg.type == "smtp":
        probe = SmtpCheck(cfg.host, cfg.port, cfg.timeout)
    elif cfg.type == "imap":
        probe = ImapCheck(cfg.host, cfg.port, cfg.timeout)
    elif cfg.type == "tcp":
        probe = TcpCheck(cfg.host, cfg.port, cfg.timeout)
    elif cfg.type == "command":
        probe = CommandCheck(cfg.argv, cfg.timeout, env)
    elif cfg.type == "path":
        probe = PathCheck(cfg.path, cfg.timeout, cfg.absent, cfg.writable, cfg.mountpoint)
    else:
        raise ValueError(f"unknown health check type {cfg.type!r}")
    return TimedCheck(probe, cfg.scope)


def build_checks(cfg: HealthConfig, env: Mapping[str, str] | None = None) -> list[Check]:
    return [build_check(c, env) for c in cfg.checks]


# -- Verdict -------------------------------------------------------------------------


class Hysteresis:
    """rise passes in a row -> healthy; fall failures in a row -> unhealthy.

    One slow round under load must not trigger a failover, and one lucky round
    must not make a broken node a candidate.
    """

    def __init__(self, rise: int, fall: int, healthy: bool = False):
        if rise < 1 or fall < 1:
            raise ValueError(f"rise and fall must be >= 1 (got rise={rise}, fall={fall})")
        self.rise, self.fall = rise, fall
        self._healthy = healthy
        self._streak = 0  # consecutive rounds that disagree with the current verdict

    @property
    def healthy(self) -> bool:
        return self._healthy

    def observe(self, ok: bool) -> bool:
        if ok == self._healthy:
            self._streak = 0
            return self._healthy
        self._streak += 1
        if self._streak >= (self.rise if ok else self.fall):
            self._healthy, self._streak = ok, 0
        return self._healthy


def _scope(check: Check) -> str:
    return str(getattr(check, "scope", "always"))


class HealthMonitor:
    """Runs every check each ``interval`` on its own daemon thread.

    Checks scoped "active" (smtp/imap/tcp by default) probe services that run only
    on the active node: they are judged only between set_active(True) and
    set_active(False), and after a promotion a failure counts only once that check
    has passed or ``cfg.grace`` has gone by (Postfix takes a moment to start).
    """

    def __init__(
        self,
        cfg: HealthConfig,
        on_change: Callable[[bool, list[CheckResult]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        checks: Sequence[Check] | None = None,  # tests inject their own
        env: Mapping[str, str] | None = None,  # for command checks (FAILOVERD_NODE, ...)
    ):
        self.cfg = cfg
        self.on_change = on_change
        self.clock = clock
        self.checks = list(checks) if checks is not None else build_checks(cfg, env)
        # No checks configured: nothing can say the node is unable to serve.
        self._verdict = Hysteresis(cfg.rise, cfg.fall, healthy=not self.checks)
        self._results: list[CheckResult] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._active = False
        self._active_since = 0.0
        self._proven: set[str] = set()  # active-scope checks passed since the promotion

    @property
    def healthy(self) -> bool:
        with self._lock:
            return self._verdict.healthy

    @property
    def results(self) -> list[CheckResult]:
        with self._lock:
            return list(self._results)

    def set_active(self, active: bool) -> None:
        """Say whether this node runs its resources (call on promotion and demotion)."""
        with self._lock:
            if active and not self._active:
                self._active_since, self._proven = self.clock(), set()
            self._active = active

    def start(self) -> None:
        if self._thread is not None or not self.checks:
            return
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(len(self.checks), thread_name_prefix="health-check")
        self._thread = threading.Thread(target=self._loop, name="health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=max((c.timeout for c in self.cfg.checks), default=0) + 2.0)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _loop(self) -> None:
        next_round = self.clock()
        while not self._stopping.is_set():
            self.run_round()
            # Fixed cadence on the monotonic clock; a round that overran starts the
            # next one at once instead of queueing missed rounds (rounds never overlap:
            # this thread waits for every check of a round before the next).
            next_round = max(next_round + self.cfg.interval, self.clock())
            self._stopping.wait(max(0.0, next_round - self.clock()))

    def run_round(self) -> bool:
        """Run every check that applies once, feed the verdict, and return it."""
        with self._lock:
            checks = [c for c in self.checks if self._active or _scope(c) != "active"]
        if self._pool is not None:
            results = list(self._pool.map(lambda c: c.run(), checks))
        else:
            results = [c.run() for c in checks]
        with self._lock:
            before = self._verdict.healthy
            previous = {r.name: r.ok for r in self._results}
            after = self._verdict.observe(self._passed(checks, results))
            self._results = results
        for r in results:
            if previous.get(r.name, True) != r.ok:
                event = "health_check_recovered" if r.ok else "health_check_failed"
                level = log.info if r.ok else log.warning
                level(event, check=r.name, detail=r.detail, took_ms=round(r.took * 1000))
        if after != before:
            failing = [f"{r.name}: {r.detail}" for r in results if not r.ok]
            log.warning("health_changed", healthy=after, failing=failing)
            if self.on_change is not None:
                try:
                    self.on_change(after, results)
                except Exception:
                    log.exception("health_callback_failed")
        return after

    def _passed(self, checks: Sequence[Check], results: Sequence[CheckResult]) -> bool:
        """Does the round pass? Called with the lock held: a demotion or promotion
        during the round is taken into account."""
        in_grace = self.clock() - self._active_since < self.cfg.grace
        passed = True
        for check, r in zip(checks, results, strict=True):
            if _scope(check) == "active":
                if not self._active:
                    continue  # demoted while the round ran
                if r.ok:
                    self._proven.add(check.name)
                elif in_grace and check.name not in self._proven:
                    continue  # still starting up after the promotion
            passed = passed and r.ok
        return passed
