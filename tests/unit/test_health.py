"""Health checks against tiny real servers on loopback, the hysteresis, the monitor."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from failoverd.config import CheckConfig, HealthConfig
from failoverd.health import CheckResult, HealthMonitor, Hysteresis, build_check

Handler = Callable[[socket.socket, threading.Event], None]


class FakeServer:
    """A listening socket on 127.0.0.1 that runs handler(conn, stop) per connection."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.stop = threading.Event()
        self.received: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.handler(conn, self.stop)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], FakeServer]]:
    servers: list[FakeServer] = []

    def make(handler: Handler) -> FakeServer:
        servers.append(FakeServer(handler))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def recv_line(conn: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def smtp_server(
    banner: tuple[str, ...] = ("220-mx.example ESMTP", "220 ready"),
    ehlo: tuple[str, ...] = ("250-mx.example", "250-PIPELINING", "250 8BITMIME"),
    banner_delay: float = 0.0,
    ehlo_delay: float = 0.0,
    log: list[str] | None = None,
) -> Handler:
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        if stop.wait(banner_delay):
            return
        conn.sendall("".join(f"{line}\r\n" for line in banner).encode())
        line = recv_line(conn)
        if log is not None:
            log.append(line)
        if stop.wait(ehlo_delay):
            return
        conn.sendall("".join(f"{line}\r\n" for line in ehlo).encode())
        line = recv_line(conn)
        if log is not None:
            log.append(line)
        conn.sendall(b"221 bye\r\n")

    return handle


def silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(10)


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check(
    kind: str, port: int = 0, timeout: float = 2.0, argv: tuple[str, ...] = ()
) -> CheckResult:
    cfg = CheckConfig(type=kind, timeout=timeout, port=port, argv=argv)  # type: ignore[arg-type]
    return build_check(cfg).run()


def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


# -- smtp ---------------------------------------------------------------------------


def test_smtp_check_passes_on_multiline_banner_and_ehlo(serve) -> None:
    said: list[str] = []
    srv = serve(smtp_server(log=said))
    r = check("smtp", srv.port)
    assert r.ok, r.detail
    assert r.name == f"smtp 127.0.0.1:{srv.port}"
    assert wait_for(lambda: len(said) == 2)
    assert said == ["EHLO failoverd-health", "QUIT"]


def test_slow_but_answering_smtp_server_is_healthy(serve) -> None:
    # A mail flood makes the banner slow; within the timeout that is not an outage.
    srv = serve(smtp_server(banner_delay=0.5))
    r = check("smtp", srv.port, timeout=2.0)
    assert r.ok, r.detail
    assert 0.45 <= r.took < 2.0


def test_smtp_check_fails_on_421_banner(serve) -> None:
    srv = serve(smtp_server(banner=("421 too busy",)))
    r = check("smtp", srv.port)
    assert not r.ok
    assert r.detail == "banner: 421 too busy"


def test_smtp_check_fails_when_ehlo_is_refused(serve) -> None:
    srv = serve(smtp_server(ehlo=("554 go away",)))
    r = check("smtp", srv.port)
    assert not r.ok
    assert r.detail == "ehlo: 554 go away"


def test_silent_smtp_server_fails_at_the_timeout(serve) -> None:
    srv = serve(silent)
    r = check("smtp", srv.port, timeout=0.5)
    assert not r.ok
    assert r.detail == "banner: timed out after 0.5s"
    assert 0.45 <= r.took < 1.0


def test_smtp_timeout_is_a_deadline_for_the_whole_exchange(serve) -> None:
    # Each step alone is within the timeout, together they are not.
    srv = serve(smtp_server(banner_delay=0.3, ehlo_delay=0.3))
    r = check("smtp", srv.port, timeout=0.5)
    assert not r.ok
    assert r.detail == "ehlo: timed out after 0.5s"
    assert r.took < 0.8


def test_smtp_check_fails_fast_on_refused_port() -> None:
    r = check("smtp", refused_port(), timeout=2.0)
    assert not r.ok
    assert r.detail.startswith("connect: ")
    assert "refused" in r.detail.lower()
    assert r.took < 0.5


# -- imap, tcp ------------------------------------------------------------------------


def imap_server(greeting: str, said: list[str] | None = None) -> Handler:
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(f"{greeting}\r\n".encode())
        line = recv_line(conn)
        if said is not None:
            said.append(line)
        conn.sendall(b"* BYE logging out\r\na1 OK LOGOUT completed\r\n")

    return handle


def test_imap_check_passes_on_ok_greeting_and_logs_out(serve) -> None:
    said: list[str] = []
    srv = serve(imap_server("* OK [CAPABILITY IMAP4rev1] Dovecot ready.", said))
    r = check("imap", srv.port)
    assert r.ok, r.detail
    assert wait_for(lambda: said == ["a1 LOGOUT"])


def test_imap_check_fails_on_bye_greeting(serve) -> None:
    srv = serve(imap_server("* BYE too many connections"))
    r = check("imap", srv.port)
    assert not r.ok
    assert r.detail == "greeting: * BYE too many connections"


def test_imap_check_fails_on_silent_server_at_the_timeout(serve) -> None:
    srv = serve(silent)
    r = check("imap", srv.port, timeout=0.3)
    assert not r.ok
    assert r.detail == "greeting: timed out after 0.3s"
    assert r.took < 0.8


def test_tcp_check_passes_when_port_accepts(serve) -> None:
    srv = serve(silent)
    r = check("tcp", srv.port)
    assert r.ok, r.detail


def test_tcp_check_fails_fast_on_refused_port() -> None:
    r = check("tcp", refused_port())
    assert not r.ok
    assert r.detail.startswith("connect: ")
    assert r.took < 0.5


# -- command --------------------------------------------------------------------------


def test_command_check_passes_on_exit_zero_with_last_output_line() -> None:
    r = check("command", argv=("sh", "-c", "echo checking; echo spool ok"))
    assert r.ok
    assert r.detail == "spool ok"


def test_command_check_fails_on_non_zero_exit_with_last_line() -> None:
    r = check("command", argv=("sh", "-c", "echo checking; echo 'spool full' >&2; exit 3"))
    assert not r.ok
    assert r.detail == "exit 3: spool full"


def test_command_check_is_killed_at_its_timeout() -> None:
    r = check("command", timeout=0.3, argv=("sh", "-c", "echo started; sleep 10"))
    assert not r.ok
    assert r.detail == "timed out after 0.3s: started"
    assert r.took < 1.5


def test_command_check_gets_the_monitor_environment() -> None:
    cfg = CheckConfig(type="command", timeout=2.0, argv=("sh", "-c", 'echo "$FAILOVERD_NODE"'))
    mon = HealthMonitor(HealthConfig(checks=(cfg,)), env={"FAILOVERD_NODE": "mail1"})
    mon.run_round()
    assert mon.results[0].detail == "mail1"


def test_command_check_fails_when_program_is_missing() -> None:
    r = check("command", argv=("/nonexistent/check-spool",))
    assert not r.ok
    assert r.detail.startswith("could not run: ")


# -- path ------------------------------------------------------------------------------


def path_check(path: object, timeout: float = 1.0, **wants: bool) -> CheckResult:
    cfg = CheckConfig(type="path", timeout=timeout, path=str(path), **wants)
    return build_check(cfg).run()


def test_path_check_passes_on_a_present_writable_directory(tmp_path: Path) -> None:
    r = path_check(tmp_path, writable=True)
    assert (r.ok, r.detail, r.name) == (True, "present", f"path {tmp_path} (writable)")


def test_path_check_fails_when_the_path_is_missing(tmp_path: Path) -> None:
    r = path_check(tmp_path / "vmail")
    assert (r.ok, r.detail) == (False, "does not exist")


def test_path_check_tells_an_unmounted_store_from_a_mounted_one(tmp_path: Path) -> None:
    # An empty mount point is a directory like any other: only `mountpoint` tells.
    r = path_check(tmp_path, mountpoint=True)
    assert (r.ok, r.detail) == (False, "not a mount point (the file system is not mounted)")
    assert path_check("/proc", mountpoint=True).detail == "mounted"


def test_path_check_fails_on_a_read_only_file_system(tmp_path: Path) -> None:
    # Root may write anywhere the mode says no, so only a real read-only mount tests
    # this: a tmpfs mounted ro in a private mount namespace.
    store = tmp_path / "store"
    store.mkdir()
    probe = (
        "from failoverd.config import CheckConfig; from failoverd.health import build_check; "
        f"r = build_check(CheckConfig('path', 1.0, path={str(store)!r}, writable=True)).run(); "
        "print(r.ok, r.detail)"
    )
    out = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount -t tmpfs -o ro none "$1" && exec "$2" -c "$3"',
            "sh",
            str(store),
            sys.executable,
            probe,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert out.strip() == "False not writable (read-only file system or permissions)"
    assert path_check(store, writable=True).ok  # the same directory outside that namespace


def test_path_check_with_absent_fails_while_the_drain_flag_exists(tmp_path: Path) -> None:
    flag = tmp_path / "drain"
    assert path_check(flag, absent=True).detail == "absent"
    flag.write_text("")
    r = path_check(flag, absent=True)
    assert (r.ok, r.detail) == (False, "exists (it must not)")


def test_path_check_forks_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Scenario 29: a forked check's CPU counts against the daemon's own cgroup quota.
    def no_fork(*args: object, **kwargs: object) -> None:
        raise AssertionError("the path check forked a process")

    monkeypatch.setattr(subprocess, "Popen", no_fork)
    monkeypatch.setattr(os, "fork", no_fork)
    monkeypatch.setattr(os, "posix_spawn", no_fork)
    assert path_check(tmp_path, writable=True).ok


def test_a_hung_file_system_fails_the_path_check_at_its_timeout_and_piles_up_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dead NFS server leaves stat() in the kernel; here stat waits for an event.
    release, real_stat, looks = threading.Event(), os.stat, []

    def hung_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path) == str(tmp_path):
            looks.append(path)
            release.wait(10)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", hung_stat)
    chk = build_check(CheckConfig(type="path", timeout=0.3, path=str(tmp_path)))
    first = chk.run()
    assert (first.ok, first.detail) == (False, "no answer from the file system in 0.3s (hung?)")
    assert 0.3 <= first.took < 1.5
    second = chk.run()  # the first look is still in the kernel: fail at once, no new thread
    assert (second.ok, second.took < 0.1, len(looks)) == (False, True, 1)
    assert second.detail == "an earlier look has not returned yet (a hung file system?)"
    release.set()
    assert wait_for(lambda: chk.run().ok)


# -- hysteresis -----------------------------------------------------------------------

P = T = True
F = False


@pytest.mark.parametrize(
    ("rise", "fall", "initial", "rounds", "verdicts"),
    [
        # starts unhealthy: rise passes in a row needed
        (2, 3, F, [P, P, P], [F, T, T]),
        # a failure in between resets the count
        (2, 3, F, [P, F, P, P], [F, F, F, T]),
        # fall failures in a row to become unhealthy
        (2, 3, T, [F, F, F, F], [T, T, F, F]),
        # one good round under load resets the failure count: no flapping
        (2, 3, T, [F, F, P, F, F, P], [T, T, T, T, T, T]),
        # and back: unhealthy -> healthy -> unhealthy
        (1, 1, F, [P, F, P], [T, F, T]),
        # a single pass while unhealthy does not make a candidate
        (3, 1, F, [P, P, F, P, P, P], [F, F, F, F, F, T]),
    ],
)
def test_hysteresis_table(
    rise: int, fall: int, initial: bool, rounds: list[bool], verdicts: list[bool]
) -> None:
    h = Hysteresis(rise, fall, healthy=initial)
    assert [h.observe(ok) for ok in rounds] == verdicts
    assert h.healthy == verdicts[-1]


def test_hysteresis_rejects_zero_thresholds() -> None:
    with pytest.raises(ValueError):
        Hysteresis(0, 1)


# -- monitor --------------------------------------------------------------------------


def test_monitor_without_checks_is_healthy_from_the_start() -> None:
    mon = HealthMonitor(HealthConfig(checks=()))
    assert mon.healthy
    mon.start()
    mon.stop()
    assert mon.healthy


def test_monitor_flips_and_calls_on_change(serve) -> None:
    srv = serve(silent)
    changes: list[tuple[bool, list[CheckResult]]] = []
    cfg = HealthConfig(
        interval=0.05, rise=2, fall=2, checks=(CheckConfig(type="tcp", timeout=0.5, port=srv.port),)
    )
    mon = HealthMonitor(cfg, on_change=lambda ok, rs: changes.append((ok, rs)))
    assert not mon.healthy  # unhealthy until rise passes
    mon.start()
    try:
        # on_change runs just after the verdict is published: wait for the call itself.
        assert wait_for(lambda: [c[0] for c in changes] == [True])
        assert mon.healthy
        assert mon.results and mon.results[0].ok
        srv.close()  # now the port refuses connections
        assert wait_for(lambda: [c[0] for c in changes] == [True, False])
        assert not mon.healthy
        failed = changes[-1][1]
        assert not failed[0].ok and failed[0].detail.startswith("connect: ")
    finally:
        mon.stop()


class SlowCheck:
    """Records when each run started and ended, and the largest overlap seen."""

    def __init__(self, name: str, took: float, runs: list[tuple[float, float]]):
        self.name, self.took, self.runs = name, took, runs

    def run(self) -> CheckResult:
        t0 = time.monotonic()
        time.sleep(self.took)
        self.runs.append((t0, time.monotonic()))
        return CheckResult(self.name, True, "ok", self.took)


def test_rounds_that_overrun_the_interval_start_at_once_and_never_overlap() -> None:
    runs: list[tuple[float, float]] = []
    mon = HealthMonitor(HealthConfig(interval=0.05), checks=[SlowCheck("slow", 0.12, runs)])
    mon.start()
    try:
        assert wait_for(lambda: len(runs) >= 4)
    finally:
        mon.stop()
    for (_, end), (start, _) in zip(runs, runs[1:], strict=False):
        assert start >= end  # no overlap
        assert start - end < 0.05  # no idle wait after an overrun


def test_rounds_keep_their_interval_and_run_checks_concurrently() -> None:
    a: list[tuple[float, float]] = []
    b: list[tuple[float, float]] = []
    checks = [SlowCheck("a", 0.05, a), SlowCheck("b", 0.05, b)]
    mon = HealthMonitor(HealthConfig(interval=0.2, rise=1), checks=checks)
    mon.start()
    try:
        assert wait_for(lambda: len(a) >= 3 and len(b) >= 3)
    finally:
        mon.stop()
    # Same round, side by side, not one after another: the two runs overlap in time.
    assert all(sa < eb and sb < ea for (sa, ea), (sb, eb) in zip(a, b, strict=False))
    gaps = [s2 - s1 for (s1, _), (s2, _) in zip(a, a[1:], strict=False)]
    assert all(0.15 < g < 0.35 for g in gaps), gaps
    assert mon.healthy


# -- scope: service checks judge only the active ---------------------------------------


class ScriptedCheck:
    def __init__(self, name: str, scope: str, ok: bool = True):
        self.name, self.scope, self.ok, self.runs = name, scope, ok, 0

    def run(self) -> CheckResult:
        self.runs += 1
        return CheckResult(self.name, self.ok, "ok" if self.ok else "refused", 0.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scoped_monitor(*checks: ScriptedCheck, grace: float = 10.0) -> tuple[HealthMonitor, FakeClock]:
    clock = FakeClock()
    cfg = HealthConfig(rise=1, fall=1, grace=grace)
    return HealthMonitor(cfg, clock=clock, checks=list(checks)), clock


def test_standby_ignores_active_scope_checks_of_its_stopped_services() -> None:
    smtp, store = ScriptedCheck("smtp", "active", ok=False), ScriptedCheck("store", "always")
    mon, _ = scoped_monitor(smtp, store)
    assert mon.run_round() is True
    assert smtp.runs == 0 and [r.name for r in mon.results] == ["store"]
    store.ok = False
    assert mon.run_round() is False  # "always" checks count on a standby


def test_active_scope_failures_count_after_the_grace_period() -> None:
    smtp = ScriptedCheck("smtp", "active", ok=False)
    mon, clock = scoped_monitor(smtp, grace=10.0)
    mon.run_round()
    mon.set_active(True)
    clock.now += 5
    assert mon.run_round() is True  # Postfix still starting
    clock.now += 6
    assert mon.run_round() is False
    mon.set_active(False)
    assert mon.run_round() is True  # demoted: its services are meant to be stopped


def test_active_scope_failure_counts_at_once_after_the_check_has_passed() -> None:
    smtp = ScriptedCheck("smtp", "active")
    mon, clock = scoped_monitor(smtp, grace=10.0)
    mon.set_active(True)
    assert mon.run_round() is True
    smtp.ok = False
    clock.now += 1
    assert mon.run_round() is False  # within grace, but it already worked once


def test_build_checks_carries_the_configured_scope() -> None:
    smtp = CheckConfig(type="smtp", timeout=1.0, port=refused_port(), scope="active")
    mon = HealthMonitor(HealthConfig(rise=1, fall=1, checks=(smtp,)))
    assert mon.run_round() is True and mon.results == []  # standby: not judged
    mon.set_active(True)
    mon.run_round()
    assert [r.ok for r in mon.results] == [False]
