"""Resources with real processes: command, systemd (fake systemctl), vip (own netns)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from failoverd.config import CommandResourceConfig, SystemdResourceConfig, VipResourceConfig
from failoverd.resources import systemd_dropin
from failoverd.resources.base import ResourceError, prepare_all, stop_all
from failoverd.resources.build import build_resource, build_resources
from failoverd.resources.command import CommandResource
from failoverd.resources.systemd import SystemdResource
from failoverd.resources.vip import GratuitousArp, VipResource

ENV = {"FAILOVERD_CLUSTER": "mail-east", "FAILOVERD_NODE": "mail1", "FAILOVERD_EPOCH": "7"}


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


# What Habets' arping answers to --help and -V, which is how the flavour is found.
HABETS_HELP = (
    'case "$1" in --help) echo "ARPing 2.23, by Thomas Habets"; exit 0;; -V) exit 1;; esac\n'
)


def habets_arping(tmp_path: Path, then: str) -> Path:
    """A fake Habets arping: answers the flavour probes, then runs `then`."""
    return script(tmp_path / "arping", HABETS_HELP + then)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def command(start: str, stop: str = "true", status: str | None = None, timeout: float = 5.0):
    cfg = CommandResourceConfig(
        start=("sh", "-c", start),
        stop=("sh", "-c", stop),
        status=("sh", "-c", status) if status else None,
        timeout=timeout,
    )
    return CommandResource(cfg)


# -- command ------------------------------------------------------------------------


def test_start_returns_promptly_while_the_daemon_it_launched_keeps_running(tmp_path: Path) -> None:
    # The background sleep inherits stdout/stderr: waiting on a pipe would hang 30 s.
    pidfile = tmp_path / "daemon.pid"
    res = command(f"sleep 30 & echo $! > {pidfile}; echo daemon started")
    t0 = time.monotonic()
    res.start(ENV)
    took = time.monotonic() - t0
    pid = int(pidfile.read_text())
    try:
        assert took < 2.0
        assert alive(pid)  # a normal exit must not kill the daemon it left behind
    finally:
        os.kill(pid, signal.SIGKILL)


def test_commands_get_the_failoverd_environment_on_top_of_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A variable of our own, not HOME: under systemd or `env -i` HOME may be unset.
    monkeypatch.setenv("FAILOVERD_TEST_INHERITED", "from-the-daemon")
    out = tmp_path / "env"
    res = command(
        f'echo "$FAILOVERD_CLUSTER $FAILOVERD_NODE $FAILOVERD_EPOCH $FAILOVERD_TEST_INHERITED"'
        f" > {out}"
    )
    res.start(ENV)
    assert out.read_text().split() == ["mail-east", "mail1", "7", "from-the-daemon"]


def test_start_that_times_out_is_killed_with_its_process_group(tmp_path: Path) -> None:
    parent, child = tmp_path / "parent", tmp_path / "child"
    res = command(f"echo $$ > {parent}; sleep 30 & echo $! > {child}; wait", timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(ResourceError, match=r"^resource\.start \(command\): timed out after 0.5s$"):
        res.start(ENV)
    assert time.monotonic() - t0 < 2.0
    pids = [int(parent.read_text()), int(child.read_text())]
    assert wait_for(lambda: not any(alive(p) for p in pids))


def test_failing_stop_raises_with_exit_code_and_logs_the_stderr_tail_locally() -> None:
    res = command("true", stop="echo stopping; echo 'cannot stop: queue busy' >&2; exit 4")
    with capture_logs() as logs, pytest.raises(ResourceError) as e:
        res.stop(ENV)
    # The error is published (member znode, /status, hooks): no command output in it.
    assert str(e.value) == "resource.stop (command): exited with 4"
    # The operator reads what the command said in this node's log.
    line = next(e for e in logs if e["event"] == "resource_command_failed")
    assert line["action"] == "stop" and line["exit_code"] == 4
    assert "cannot stop: queue busy" in line["output"]


def test_missing_start_program_raises() -> None:
    cfg = CommandResourceConfig(start=("/nonexistent/mysmtpd",), stop=("true",))
    with pytest.raises(ResourceError, match="could not run"):
        CommandResource(cfg).start(ENV)


def test_is_running_follows_the_status_exit_code(tmp_path: Path) -> None:
    flag = tmp_path / "up"
    res = command("true", status=f"test -e {flag}")
    assert res.is_running(ENV) is False
    flag.touch()
    assert res.is_running(ENV) is True
    assert command("true").is_running(ENV) is None  # no status command: cannot tell


def test_command_resource_is_named_by_its_key_path_not_the_program_it_runs() -> None:
    def name(*start: str) -> str:
        return build_resource(
            CommandResourceConfig(start=start, stop=("true",)), "resources[3]"
        ).name

    assert name("/usr/local/bin/mail-service", "start") == "command resources[3]"
    assert name("env", "PGPASSWORD=x", "psql") == "command resources[3]"


# -- stop_all -----------------------------------------------------------------------


class Exploding:
    name = "exploding"
    timeout = 1.0

    def start(self, env: Mapping[str, str]) -> None: ...

    def stop(self, env: Mapping[str, str]) -> None:
        raise RuntimeError("boom")

    def is_running(self, env: Mapping[str, str]) -> bool | None:
        return None


def test_stop_all_stops_in_reverse_order_and_continues_past_failures(tmp_path: Path) -> None:
    order = tmp_path / "order"
    cfgs = []
    for svc, rc in (("svc-a", 0), ("svc-b", 3), ("svc-c", 0)):
        prog = script(
            tmp_path / svc, f'echo {svc} >> {order}; echo "{svc} refused" >&2; exit {rc}\n'
        )
        cfgs.append(CommandResourceConfig(start=(str(prog),), stop=(str(prog),)))
    resources = [*build_resources(cfgs), Exploding()]
    failures = stop_all(resources, ENV)
    assert order.read_text().split() == ["svc-c", "svc-b", "svc-a"]
    assert len(failures) == 2
    assert failures[0] == "exploding: boom"
    assert failures[1] == "command resources[1]: resources[1].stop (command): exited with 3"
    assert stop_all(build_resources(cfgs[:1]), ENV) == []


# -- systemd (fake systemctl) --------------------------------------------------------


@pytest.fixture
def systemctl(tmp_path: Path) -> Path:
    """Logs its argv; `start`/`stop` fail when a fail-<verb> file exists; `is-active`
    exits 0 when an active-<unit> file exists, else 3; a `stop` that succeeds makes
    the units it names inactive (removes their active-<unit> file).

    `show -p ... UNIT` answers as systemd does, from files: ActiveState is active
    while active-<unit> exists, else deactivating while the pid in mainpid-<unit>
    lives, else inactive; MainPID is that pid while it lives (else 0); ConsistsOf
    (the units that are PartOf= it) is the text of parts-<unit>."""
    d = tmp_path / "systemd"
    return script(
        tmp_path / "bin" / "systemctl",
        f"""echo "$*" >> {d}.log
case "$1" in
  start|stop|daemon-reload) if [ -e {d}-fail-$1 ]; then echo "Job for $2 failed." >&2; exit 1; fi ;;
  is-active) [ -e {d}-active-$3 ] || exit 3 ;;
esac
if [ "$1" = stop ]; then shift; for u in "$@"; do rm -f {d}-active-$u; done; fi
if [ "$1" = show ]; then
  u=$4; pid=$(cat {d}-mainpid-$u 2>/dev/null || echo 0)
  if [ "$pid" != 0 ] && ! kill -0 "$pid" 2>/dev/null; then pid=0; fi
  s=inactive; [ "$pid" != 0 ] && s=deactivating; [ -e {d}-active-$u ] && s=active
  printf 'ActiveState=%s\nMainPID=%s\nConsistsOf=%s\n' $s $pid "$(cat {d}-parts-$u 2>/dev/null)"
fi
""",
    )


def calls(systemctl: Path) -> list[str]:
    log = systemctl.parent.parent / "systemd.log"
    return log.read_text().splitlines() if log.exists() else []


def flag(systemctl: Path, name: str) -> Path:
    return systemctl.parent.parent / f"systemd-{name}"


UNITS = SystemdResourceConfig(units=("postfix.service", "dovecot.service"), timeout=5.0)


@pytest.fixture
def unit_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stands in for /run/systemd/system (no systemd as PID 1 here), also for the
    resources build_resource makes."""
    d = tmp_path / "run-systemd-system"
    monkeypatch.setattr(systemd_dropin, "RUNTIME_UNIT_DIR", d)
    return d


def test_systemd_starts_in_order_and_stops_in_reverse(systemctl: Path, unit_dir: Path) -> None:
    res = SystemdResource(UNITS, systemctl=str(systemctl))
    assert res.name == "systemd postfix.service dovecot.service"
    res.start(ENV)
    res.stop(ENV)
    assert [c for c in calls(systemctl) if not c.startswith("show ")] == [
        "daemon-reload",
        "start postfix.service dovecot.service",
        "stop dovecot.service postfix.service",
    ]


def test_systemd_units_get_the_epoch_through_a_drop_in_written_before_the_start(
    tmp_path: Path, unit_dir: Path
) -> None:
    # The fake systemctl copies each drop-in as it exists when it is called.
    log = tmp_path / "calls.log"
    fake = script(
        tmp_path / "bin" / "systemctl",
        f"""echo "$*" >> {log}
for f in {unit_dir}/*.d/50-failoverd.conf; do
  [ -e "$f" ] && {{ echo "--- $f"; cat "$f"; }} >> {log}
done
[ "$1" = show ] && printf 'ActiveState=inactive\nMainPID=0\nConsistsOf=\n'
exit 0
""",
    )
    env = {"FAILOVERD_CLUSTER": "mail-east", "FAILOVERD_NODE": "mail1", "FAILOVERD_EPOCH": "7"}
    res = SystemdResource(UNITS, systemctl=str(fake), unit_dir=unit_dir)
    res.start(env)
    dropin = (
        "# Written by failoverd before it starts this unit; removed when it stops it.\n"
        "[Service]\n"
        'Environment="FAILOVERD_CLUSTER=mail-east" "FAILOVERD_NODE=mail1" "FAILOVERD_EPOCH=7"\n'
    )
    for unit in UNITS.units:
        assert (unit_dir / f"{unit}.d" / "50-failoverd.conf").read_text() == dropin
    seen = log.read_text()
    # Both drop-ins exist at daemon-reload, which comes before the start.
    reload_part, start_part = seen.split("start postfix.service dovecot.service\n")
    assert reload_part.startswith("daemon-reload\n")
    assert reload_part.count("FAILOVERD_EPOCH=7") == 2
    res.stop(env)
    assert not list(unit_dir.glob("*.d/50-failoverd.conf")), "stop leaves the drop-ins"
    assert "stop dovecot.service postfix.service" in log.read_text().splitlines()


def test_systemd_dropin_quotes_what_systemd_would_expand_or_split() -> None:
    text = systemd_dropin.dropin_text(
        {"FAILOVERD_CLUSTER": 'a b"%\\', "FAILOVERD_NODE": "n", "FAILOVERD_EPOCH": ""}
    )
    line = text.splitlines()[-1]
    assert line == (
        'Environment="FAILOVERD_CLUSTER=a b\\"%%\\\\" "FAILOVERD_NODE=n" "FAILOVERD_EPOCH="'
    )
    with pytest.raises(ValueError):
        systemd_dropin.dropin_text({"FAILOVERD_NODE": "a\nExecStart=/bin/evil"})


def test_systemd_start_fails_without_running_systemctl_when_the_drop_in_cannot_be_written(
    systemctl: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")  # the unit directory cannot be created under a file
    res = SystemdResource(UNITS, systemctl=str(systemctl), unit_dir=blocked)
    with pytest.raises(ResourceError, match="cannot write the FAILOVERD_\\* drop-in"):
        res.start(ENV)
    assert calls(systemctl) == []


def test_systemd_start_fails_when_daemon_reload_fails(systemctl: Path, unit_dir: Path) -> None:
    flag(systemctl, "fail-daemon-reload").touch()
    with pytest.raises(ResourceError, match="daemon-reload"):
        SystemdResource(UNITS, systemctl=str(systemctl)).start(ENV)
    assert calls(systemctl) == ["daemon-reload"]


def test_systemd_default_systemctl_is_found_on_path(systemctl: Path, unit_dir: Path) -> None:
    res = build_resource(UNITS)
    res.start({**ENV, "PATH": f"{systemctl.parent}:{os.environ['PATH']}"})
    assert calls(systemctl) == ["daemon-reload", "start postfix.service dovecot.service"]
    assert (unit_dir / "postfix.service.d" / "50-failoverd.conf").exists()


def test_systemd_is_running_only_when_every_unit_is_active(systemctl: Path) -> None:
    res = SystemdResource(UNITS, systemctl=str(systemctl))
    assert res.is_running(ENV) is False
    flag(systemctl, "active-postfix.service").touch()
    assert res.is_running(ENV) is False
    flag(systemctl, "active-dovecot.service").touch()
    assert res.is_running(ENV) is True
    assert "is-active --quiet postfix.service" in calls(systemctl)


def test_systemd_failed_start_raises_and_logs_stderr(systemctl: Path, unit_dir: Path) -> None:
    flag(systemctl, "fail-start").touch()
    res = SystemdResource(UNITS, systemctl=str(systemctl), key="resources[1]")
    with capture_logs() as logs, pytest.raises(ResourceError) as e:
        res.start(ENV)
    assert str(e.value) == (
        "resources[1].start (systemd postfix.service dovecot.service): exited with 1"
    )
    line = next(e for e in logs if e["event"] == "resource_command_failed")
    assert "Job for postfix.service failed" in line["output"]


def test_systemd_failed_stop_is_fine_when_nothing_is_left_active(
    systemctl: Path, unit_dir: Path
) -> None:
    flag(systemctl, "fail-stop").touch()  # e.g. "Unit not loaded"
    res = SystemdResource(UNITS, systemctl=str(systemctl))
    res.stop(ENV)
    flag(systemctl, "active-postfix.service").touch()
    with pytest.raises(ResourceError, match="stop"):
        res.stop(ENV)


def reaped(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """`proc`, reaped as soon as it exits (as systemd reaps a unit's processes)."""
    threading.Thread(target=proc.wait, daemon=True).start()
    return proc


def test_systemd_stop_is_done_only_once_the_units_main_process_is_gone(
    systemctl: Path, unit_dir: Path
) -> None:
    # systemctl stop returned, but the unit's main process (its pid as systemd
    # showed it before the stop) is still exiting: not stopped yet.
    main = reaped(subprocess.Popen(["sleep", "30"]))
    flag(systemctl, "mainpid-postfix.service").write_text(str(main.pid))
    flag(systemctl, "active-postfix.service").touch()
    res = SystemdResource(UNITS, systemctl=str(systemctl))
    threading.Timer(0.5, main.kill).start()
    res.stop(ENV)
    assert not alive(main.pid), "stop returned while the unit's main process was still running"
    assert "show -p MainPID,ConsistsOf postfix.service" in calls(systemctl)


def test_systemd_stop_fails_when_the_main_process_outlives_the_timeout(
    systemctl: Path, unit_dir: Path
) -> None:
    main = reaped(subprocess.Popen(["sleep", "30"]))
    try:
        flag(systemctl, "mainpid-postfix.service").write_text(str(main.pid))
        res = SystemdResource(SystemdResourceConfig(("postfix.service",), 1.0), str(systemctl))
        started = time.monotonic()
        still = f"postfix.service is deactivating .main pid {main.pid}"
        with pytest.raises(ResourceError, match=still):
            res.stop(ENV)
        assert 0.9 < time.monotonic() - started < 3.0
    finally:
        main.kill()


def test_systemd_stop_of_a_wrapper_waits_for_the_units_that_are_part_of_it(
    systemctl: Path, unit_dir: Path
) -> None:
    # Debian's postfix.service is a oneshot wrapper (ExecStart=/bin/true): its stop
    # job is done at once, the stop of postfix@-.service (PartOf=postfix.service,
    # no MainPID: GuessMainPID=no) runs after it, while the master exits.
    flag(systemctl, "parts-postfix.service").write_text("postfix@-.service")
    master = flag(systemctl, "active-postfix@-.service")
    master.touch()
    res = SystemdResource(SystemdResourceConfig(("postfix.service",), 5.0), str(systemctl))
    threading.Timer(0.5, master.unlink).start()
    res.stop(ENV)
    assert not master.exists(), "stop returned while postfix@-.service was still stopping"


def test_systemd_stop_of_a_unit_without_a_main_process_property_is_judged_by_its_state(
    tmp_path: Path, unit_dir: Path
) -> None:
    # A .mount or .socket unit has no MainPID property: `show` leaves it out.
    fake = script(
        tmp_path / "bin" / "systemctl",
        """[ "$1" = show ] && printf 'ActiveState=inactive\\nConsistsOf=\\n'
exit 0
""",
    )
    cfg = SystemdResourceConfig(("srv-mail.mount",), 2.0)
    started = time.monotonic()
    SystemdResource(cfg, systemctl=str(fake)).stop(ENV)
    assert time.monotonic() - started < 1.0


# -- vip: flavours of arping and `ip` output, with fake programs ----------------------


def test_habets_arping_sends_unsolicited_arp_from_the_vip(tmp_path: Path) -> None:
    log = tmp_path / "arping.log"
    arping = habets_arping(
        tmp_path,
        f"""echo "$*" >> {log}
echo "1 packets transmitted, 0 packets received, 100% unanswered"; exit 1
""",
    )
    arp = GratuitousArp([str(arping)], "eth0", "192.0.2.25", timeout=2.0)
    assert arp.send(2.0)  # nobody answers an unsolicited ARP: exit 1 is still "sent"
    assert log.read_text().split() == "-U -c 1 -w 0 -i eth0 -S 192.0.2.25 192.0.2.25".split()


def test_arping_counts_as_sent_once_it_reports_the_packet_and_is_reaped_after(
    tmp_path: Path,
) -> None:
    # Habets' arping prints its statistics right after sendto() and then takes ~40 ms
    # to exit (its pcap sockets close): the announcement must not wait for that exit.
    # The fake reports, then lingers; it must still be gone by the deadline.
    pidfile = tmp_path / "arping.pid"
    arping = habets_arping(
        tmp_path,
        f"""echo $$ > {pidfile}
echo "1 packets transmitted, 0 packets received, 100% unanswered"
exec sleep 30
""",
    )
    arp = GratuitousArp([str(arping)], "eth0", "192.0.2.25", timeout=1.0)
    with capture_logs() as logs:
        assert arp.send(1.0)
    pid = int(pidfile.read_text())
    assert alive(pid)  # back at the report, not at the exit
    assert [e["event"] for e in logs if e["event"].startswith("arp_")] == ["arp_announced"]
    assert wait_for(lambda: not alive(pid), timeout=5.0)  # killed at the 1 s deadline


def test_arping_that_never_reports_is_killed_at_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "arping.pid"
    arping = habets_arping(
        tmp_path,
        f"""echo $$ > {pidfile}
exec sleep 30
""",
    )
    arp = GratuitousArp([str(arping)], "eth0", "192.0.2.25", timeout=0.5)
    with capture_logs() as logs:
        assert not arp.send(0.5)
    assert not alive(int(pidfile.read_text()))
    assert any(e["event"] == "arp_failed" and "timed out" in e["error"] for e in logs)


def test_vip_knows_its_arping_before_the_first_start(tmp_path: Path) -> None:
    # The daemon prepares its resources at start: a promotion then runs arping once,
    # to announce, and spends no runs on finding out which arping it is.
    log = tmp_path / "arping.log"
    arping = script(
        tmp_path / "arping",
        f"""echo "$*" >> {log}
case "$1" in --help) echo "ARPing 2.23, by Thomas Habets"; exit 0;; -V) exit 1;; esac
echo "1 packets transmitted, 0 packets received, 100% unanswered"; exit 1
""",
    )
    ip, _ = fake_ip(tmp_path, "")
    cfg = VipResourceConfig(address="192.0.2.25/24", interface="eth0", arp_count=1)
    res = VipResource(cfg, ip=[str(ip)], arping=[str(arping)])
    prepare_all([res])
    assert [ln.split()[0] for ln in log.read_text().splitlines()] == ["--help", "-V"]
    log.unlink()
    res.start(ENV)
    assert log.read_text().split() == "-U -c 1 -w 0 -i eth0 -S 192.0.2.25 192.0.2.25".split()


def test_iputils_arping_without_u_falls_back_to_a(tmp_path: Path) -> None:
    log = tmp_path / "arping.log"
    arping = script(
        tmp_path / "arping",
        f"""case "$1" in --help) echo "Usage: arping [-fqbDUAV] [-I device]" >&2; exit 2;;
  -V) echo "arping from iputils 20221126"; exit 0;; esac
echo "$*" >> {log}
[ "$1" = -U ] && {{ echo "arping: invalid option -- 'U'" >&2; exit 2; }}
echo "Sent 1 probes (1 broadcast(s))"; exit 0
""",
    )
    arp = GratuitousArp([str(arping)], "eth0", "192.0.2.25", timeout=2.0)
    assert arp.send(2.0)
    assert arp.send(2.0)
    assert log.read_text().splitlines() == [
        "-U -c 1 -I eth0 192.0.2.25",
        "-A -c 1 -I eth0 192.0.2.25",
        "-A -c 1 -I eth0 192.0.2.25",
    ]


def test_missing_arping_is_logged_not_fatal() -> None:
    arp = GratuitousArp(["/nonexistent/arping"], "eth0", "192.0.2.25", timeout=1.0)
    with capture_logs() as logs:
        assert not arp.send(1.0)
    assert any(e["event"] == "arp_skipped" for e in logs)


def fake_ip(tmp_path: Path, shown: str, del_error: str = "") -> tuple[Path, Path]:
    log = tmp_path / "ip.log"
    del_line = f'echo "{del_error}" >&2; exit 2' if del_error else "exit 0"
    ip = script(
        tmp_path / "ip",
        f"""echo "$*" >> {log}
case "$*" in *" show "*) echo "{shown}";; *"addr del "*) {del_line};; esac
""",
    )
    return ip, log


def test_ipv6_vip_is_added_without_arping(tmp_path: Path) -> None:
    ip, log = fake_ip(tmp_path, shown="")
    arping = script(tmp_path / "arping", f"echo called >> {tmp_path}/arping.log\n")
    cfg = VipResourceConfig(address="2001:db8::25/64", interface="eth0")
    with capture_logs() as logs:
        VipResource(cfg, ip=[str(ip)], arping=[str(arping)]).start(ENV)
    assert log.read_text().splitlines() == ["addr replace 2001:db8::25/64 dev eth0"]
    assert not (tmp_path / "arping.log").exists()
    assert any(e["event"] == "arp_skipped" for e in logs)


def test_vip_stop_treats_an_absent_address_as_stopped(tmp_path: Path) -> None:
    shown = "2: eth0    inet 192.0.2.11/24 brd 192.0.2.255 scope global eth0"
    ip, _ = fake_ip(tmp_path, shown, del_error="RTNETLINK answers: Cannot assign requested address")
    res = VipResource(VipResourceConfig(address="192.0.2.25/24", interface="eth0"), ip=[str(ip)])
    res.stop(ENV)
    assert res.is_running(ENV) is False


def test_vip_stop_fails_when_the_address_is_still_there(tmp_path: Path) -> None:
    shown = "2: eth0    inet 192.0.2.25/24 scope global secondary eth0"
    ip, _ = fake_ip(tmp_path, shown, del_error="RTNETLINK answers: Operation not permitted")
    res = VipResource(VipResourceConfig(address="192.0.2.25/24", interface="eth0"), ip=[str(ip)])
    with capture_logs() as logs, pytest.raises(ResourceError, match="still present"):
        res.stop(ENV)
    assert "Operation not permitted" in next(
        e["error"] for e in logs if e["event"] == "vip_del_failed"
    )
    assert res.is_running(ENV) is True


# -- vip: repeats only while the address is still ours -------------------------------

VIP_SHOWN = "2: eth0    inet 192.0.2.25/24 scope global secondary eth0\n"


def announce_with_fakes(tmp_path: Path, show: str) -> tuple[list[str], list[dict[str, object]]]:
    """Start a VIP announcing 5 times, 50 ms apart, with a fake `ip` whose `addr show`
    runs `show` (the file `shown` holds what it prints) and a fake arping that logs
    each announcement and, at the second, takes the address away: what fence-self
    does to a daemon frozen between two repeats. Returns the announcements and the
    log once the repeats are over."""
    shown = tmp_path / "shown"
    shown.write_text(VIP_SHOWN)
    ip = script(tmp_path / "ip", f'case "$*" in *" show "*) {show.format(shown=shown)};; esac\n')
    calls = tmp_path / "arping.log"
    arping = habets_arping(
        tmp_path,
        f"""echo "$*" >> {calls}
[ "$(wc -l < {calls})" -eq 2 ] && : > {shown}
echo "Sent 1 probe"; exit 0
""",
    )
    cfg = VipResourceConfig(
        address="192.0.2.25/24", interface="eth0", arp_count=5, arp_interval=0.05
    )
    res = VipResource(cfg, ip=[str(ip)], arping=[str(arping)])
    with capture_logs() as logs:
        res.start(ENV)
        wait_for(lambda: any(e["event"] == "arp_stopped" for e in logs))
        time.sleep(0.4)  # the rest of the repeats, had they gone on
    return calls.read_text().splitlines(), logs


def test_vip_stops_announcing_once_the_address_is_gone_from_the_interface(
    tmp_path: Path,
) -> None:
    # The announcer thread outlives the moment it was started for. A daemon frozen
    # while fence-self removed its VIP must not, once thawed, tell the network the
    # address is here: that pulls clients away from the node now serving it.
    sent, logs = announce_with_fakes(tmp_path, "cat {shown}")
    assert len(sent) == 2, f"{len(sent)} announcements, {len(sent) - 2} after the address was gone"
    stopped = [e for e in logs if e["event"] == "arp_stopped"]
    assert [e["reason"] for e in stopped] == ["address gone"], stopped


def test_vip_stops_announcing_when_it_cannot_tell_the_address_is_still_there(
    tmp_path: Path,
) -> None:
    # In doubt, silence: the first announcement went out with the address, repeats
    # only help switches that missed it.
    sent, logs = announce_with_fakes(tmp_path, "echo 'ip: netlink: busy' >&2; exit 1")
    assert len(sent) == 1, f"{len(sent)} announcements, {len(sent) - 1} unverified"
    stopped = [e for e in logs if e["event"] == "arp_stopped"]
    assert [e["reason"] for e in stopped] == ["could not verify the address"], stopped


# -- vip in a throw-away network namespace (root) -------------------------------------


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=10).stdout


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace with a veth pair v0 <-> v1: v0 carries the VIP, v1 counts what
    v0 sent. Nothing leaves the namespace; it is deleted whatever happens."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    name = f"fdunit-{secrets.token_hex(4)}"  # not "fo…": the lab counts those as its own
    sh("ip", "netns", "add", name)
    try:
        # No IPv6: then the only packets on the link are the ones arping sends.
        for knob in ("all", "default"):
            sh("ip", "netns", "exec", name, "sh", "-c",
               f"echo 1 > /proc/sys/net/ipv6/conf/{knob}/disable_ipv6")  # fmt: skip
        sh("ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        sh("ip", "-n", name, "link", "set", "v0", "up")
        sh("ip", "-n", name, "link", "set", "v1", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


def vip_in(ns: str, **kw: float) -> VipResource:
    cfg = VipResourceConfig(address="192.0.2.25/24", interface="v0", timeout=5.0, **kw)  # type: ignore[arg-type]
    wrap = ("ip", "netns", "exec", ns)
    return VipResource(cfg, ip=[*wrap, "ip"], arping=[*wrap, "arping"])


def addresses(ns: str) -> str:
    return sh("ip", "-n", ns, "-o", "addr", "show", "dev", "v0")


def received(ns: str) -> int:
    return int(sh("ip", "netns", "exec", ns, "cat", "/sys/class/net/v1/statistics/rx_packets"))


def test_vip_is_added_and_removed_in_a_namespace(netns: str) -> None:
    res = vip_in(netns, arp_count=0)
    assert res.is_running(ENV) is False
    res.start(ENV)
    res.start(ENV)  # idempotent
    assert "inet 192.0.2.25/24" in addresses(netns)
    assert res.is_running(ENV) is True
    res.stop(ENV)
    assert "192.0.2.25" not in addresses(netns)
    assert res.is_running(ENV) is False
    res.stop(ENV)  # stopping a stopped vip succeeds


@pytest.fixture
def arping_installed() -> None:
    if shutil.which("arping") is None:
        pytest.skip("arping not installed")


def test_vip_announces_first_arp_before_start_returns_and_the_rest_after(
    netns: str, arping_installed: None
) -> None:
    res = vip_in(netns, arp_count=3, arp_interval=0.2)
    with capture_logs() as logs:
        t0 = time.monotonic()
        res.start(ENV)
        took = time.monotonic() - t0
        assert took < 1.0  # the repeats do not hold up the promotion
        assert received(netns) >= 1  # the first one is already on the wire
        assert wait_for(lambda: received(netns) >= 3)
        assert wait_for(lambda: sum(e["event"] == "arp_announced" for e in logs) == 3)
    res.stop(ENV)


def test_vip_stop_cancels_pending_announcements(netns: str, arping_installed: None) -> None:
    res = vip_in(netns, arp_count=5, arp_interval=0.3)
    res.start(ENV)
    res.stop(ENV)
    sent = received(netns)
    time.sleep(0.7)  # two more announcements would have gone out by now
    assert received(netns) == sent
    assert "192.0.2.25" not in addresses(netns)


def test_vip_announces_no_more_once_the_address_was_taken_away_behind_its_back(
    netns: str, arping_installed: None
) -> None:
    # As fence-self does while the daemon is frozen: the address goes, the daemon's
    # announcer is not told. Its next repeat must find the address gone and stay quiet.
    res = vip_in(netns, arp_count=5, arp_interval=0.3)
    with capture_logs() as logs:
        res.start(ENV)
        sh("ip", "-n", netns, "addr", "del", "192.0.2.25/24", "dev", "v0")
        sent = received(netns)
        time.sleep(1.5)  # the four repeats were due at 0.3, 0.6, 0.9 and 1.2 s
    assert received(netns) == sent, "announced an address this node no longer has"
    assert [e["reason"] for e in logs if e["event"] == "arp_stopped"] == ["address gone"]
    res.stop(ENV)


# -- vip: the gratuitous ARP from the daemon's own packet socket (failoverd/resources/garp.py) -----

REPO = Path(__file__).resolve().parents[2]
CAPTURE = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(("v1", 0x0806))
s.settimeout(5.0)
print("ready", flush=True)
print(s.recv(100)[:42].hex(), flush=True)
"""
START_BUILT_VIP = """
from failoverd.config import VipResourceConfig
from failoverd.resources.build import build_resource
cfg = VipResourceConfig(address="192.0.2.25/24", interface="v0", timeout=5.0, arp_count=1)
build_resource(cfg).start({})
"""


def in_netns(ns: str, code: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload]
        ["ip", "netns", "exec", ns, sys.executable, "-c", code],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_configured_vip_announces_from_its_own_socket_without_arping(
    netns: str, tmp_path: Path
) -> None:
    # arping (libpcap) needs 35-50 ms before its packet is out; the daemon's VIP sends
    # the same frame itself. arping is on PATH here, and must not be run.
    calls = tmp_path / "arping.log"
    script(tmp_path / "bin" / "arping", f'echo "$*" >> {calls}\nexit 1\n')
    capture = in_netns(netns, CAPTURE)
    assert capture.stdout is not None and capture.stdout.readline().strip() == "ready"
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    start = in_netns(netns, START_BUILT_VIP, env=env)
    assert start.wait(timeout=30) == 0
    got = bytes.fromhex(capture.communicate(timeout=10)[0].strip())
    mac = bytes.fromhex(sh("ip", "netns", "exec", netns, "cat", "/sys/class/net/v0/address")
                        .strip().replace(":", ""))  # fmt: skip
    vip = bytes([192, 0, 2, 25])
    broadcast = b"\xff" * 6
    # Ethernet broadcast from v0; ARP request (op 1) "192.0.2.25 is at <v0's MAC>",
    # addressed to the VIP itself: the frame `arping -U` sends.
    assert got[:14] == broadcast + mac + b"\x08\x06"
    assert got[14:22] == bytes.fromhex("0001080006040001")
    assert got[22:42] == mac + vip + broadcast + vip
    assert not calls.exists()
    assert "inet 192.0.2.25/24" in addresses(netns)


def test_vip_falls_back_to_arping_when_its_socket_cannot_send(tmp_path: Path) -> None:
    # No such interface here (nothing is sent anywhere): the socket fails, arping runs.
    log = tmp_path / "arping.log"
    arping = habets_arping(
        tmp_path,
        f"""echo "$*" >> {log}
echo "1 packets transmitted, 0 packets received, 100% unanswered"; exit 1
""",
    )
    arp = GratuitousArp([str(arping)], "fo-none0", "192.0.2.25", timeout=2.0, native=True)
    with capture_logs() as logs:
        assert arp.send(2.0)
        assert arp.send(2.0)
    assert [e["event"] for e in logs if e["event"].startswith("arp_")] == [
        "arp_socket_failed",
        "arp_announced",
        "arp_announced",
    ]
    assert len(log.read_text().splitlines()) == 2
