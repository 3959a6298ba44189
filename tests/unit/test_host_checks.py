"""`failoverd --check` against this host (failoverd/checks/host.py): what would fail
at 3 a.m. is an error (exit 2), what may appear later is a warning (exit 0).

Programs, unit files and interfaces are real files under tmp_path; `Machine`
points the checks there, so the tests do not depend on what this host has.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from failoverd.checks.host import Finding, Machine, host_checks
from failoverd.checks.report import check_report
from failoverd.config import Config, load_config
from tests.support.access import state_dir_for, write_credential, zk_auth

REPO = Path(__file__).resolve().parents[2]


def program(tmp_path: Path, name: str, mode: int = 0o755) -> str:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(path, mode)
    return str(path)


# What `systemctl` says where systemd is not running (a container, a chroot, this
# test machine): the checks then read the unit files on disk.
NO_SYSTEMD = """echo "System has not been booted with systemd as init system (PID 1)."
echo "Failed to connect to bus: Host is down"; exit 1
"""


def fake_systemctl(tmp_path: Path, body: str = NO_SYSTEMD) -> str:
    path = tmp_path / "bin" / "systemctl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return str(path)


def machine(
    tmp_path: Path,
    units: tuple[str, ...] = (),
    nics: tuple[str, ...] = ("eth0",),
    programs: tuple[str, ...] = ("systemctl", "ip", "arping"),
    unit_files: dict[str, str] | None = None,
    systemctl: str = NO_SYSTEMD,
) -> Machine:
    unit_dir, net_dir = tmp_path / "units", tmp_path / "net"
    unit_dir.mkdir(exist_ok=True)
    net_dir.mkdir(exist_ok=True)
    for u in units:
        (unit_dir / u).write_text("[Service]\nExecStart=/usr/sbin/daemon\n")
    for name, text in (unit_files or {}).items():
        (unit_dir / name).write_text(text)
    for n in nics:
        (net_dir / n).mkdir()
    return Machine(
        which=lambda p: f"/usr/bin/{p}" if p in programs else None,
        unit_dirs=(str(unit_dir),),
        net_dir=str(net_dir),
        systemctl=fake_systemctl(tmp_path, systemctl),
    )


def config_file(tmp_path: Path, **sections: Any) -> str:
    """A config that passes preflight.py's access rules, so only host checks speak."""
    secret = tmp_path / "zk.secret"
    write_credential(secret)
    data: dict[str, Any] = {
        "cluster": "mail-east",
        "node": {
            "name": "mail1",
            "address": "10.0.0.11",
            "state_dir": str(state_dir_for(tmp_path, "mail1")),
        },
        "peers": {"mail2": {"address": "10.0.0.12"}},
        "zookeeper": {"hosts": "zk1:2181", "auth": zk_auth(secret)},
        "fencing": [{"type": "command", "argv": [program(tmp_path, "pdu-off"), "{node}"]}],
        **sections,
    }
    path = tmp_path / "failoverd.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def findings(tmp_path: Path, m: Machine | None = None, **sections: Any) -> list[Finding]:
    return host_checks(load_config(config_file(tmp_path, **sections)), m or machine(tmp_path))


def test_a_machine_with_everything_in_place_has_no_findings(tmp_path: Path) -> None:
    ok = program(tmp_path, "ok")
    assert (
        findings(
            tmp_path,
            machine(
                tmp_path,
                units=("postfix.service", "getty@.service"),
                programs=("systemctl", "ip", "arping", "true"),
            ),
            health={"checks": [{"type": "command", "argv": [ok]}]},
            resources=[
                {"type": "vip", "address": "192.0.2.25/24", "interface": "eth0"},
                {"type": "systemd", "units": ["postfix.service", "getty@tty1.service"]},
                {"type": "command", "start": [ok], "stop": [ok], "status": ["true"]},
            ],
        )
        == []
    )


def test_missing_and_non_executable_programs_are_errors_at_their_key_path(tmp_path: Path) -> None:
    plain = program(tmp_path, "not-exec", mode=0o644)
    gone = str(tmp_path / "bin" / "gone")
    found = findings(
        tmp_path,
        health={"checks": [{"type": "command", "argv": [gone]}]},
        resources=[{"type": "command", "start": [plain], "stop": ["no-such-prog"]}],
        fencing=[{"type": "command", "argv": [str(tmp_path), "{node}"]}],
    )
    assert found == [
        Finding("error", "health.checks[0].argv", f"{gone} does not exist"),
        Finding(
            "error", "resources[0].start", f"{plain} is not executable (mode 0644): chmod +x it"
        ),
        Finding("error", "resources[0].stop", found[2].message),
        Finding("error", "fencing[0].argv", f"{tmp_path} is not a regular file"),
    ]
    assert found[2].message.startswith("'no-such-prog' is not found on PATH")


def test_hook_programs_are_checked_when_the_config_has_hooks(tmp_path: Path) -> None:
    # hooks: is parsed by failoverd/config/ once it exists; host_checks reads any .argv there.
    import dataclasses

    config = load_config(config_file(tmp_path))

    @dataclasses.dataclass(frozen=True)
    class Hook:
        argv: tuple[str, ...]

    with_hooks = type(
        "C",
        (),
        {
            **{f.name: getattr(config, f.name) for f in dataclasses.fields(config)},
            "hooks": (Hook(("/nope",)),),
        },
    )
    found = host_checks(with_hooks, machine(tmp_path))  # type: ignore[arg-type]
    assert Finding("error", "hooks[0].argv", "/nope does not exist") in found


def test_a_systemd_unit_that_is_not_installed_is_an_error(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        machine(tmp_path, units=("postfix.service",)),
        resources=[{"type": "systemd", "units": ["postfix.service", "dovecot.service"]}],
    )
    assert found == [
        Finding(
            "error",
            "resources[0].units",
            "no unit file for dovecot.service on this machine (is its package installed?)",
        )
    ]


def test_without_systemctl_systemd_units_are_a_warning(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        machine(tmp_path, programs=("ip", "arping")),
        resources=[{"type": "systemd", "units": ["postfix.service"]}],
    )
    assert [(f.severity, f.at) for f in found] == [("warning", "resources[0].units")]
    assert "systemctl is not installed" in found[0].message


def test_a_missing_vip_interface_is_a_warning_missing_arping_too_missing_ip_an_error(
    tmp_path: Path,
) -> None:
    found = findings(
        tmp_path,
        machine(tmp_path, nics=("eth0",), programs=()),
        resources=[{"type": "vip", "address": "192.0.2.25/24", "interface": "bond0"}],
    )
    assert [(f.severity, f.at) for f in found] == [
        ("warning", "resources[0].interface"),
        ("error", "resources[0]"),
        ("warning", "resources[0]"),
    ]
    assert found[0].message.startswith("no interface 'bond0'")
    assert "'ip' (iproute2) is not installed" in found[1].message
    assert "'arping' is not installed" in found[2].message


def test_check_exits_2_listing_each_missing_program_and_0_with_warnings(tmp_path: Path) -> None:
    ok = program(tmp_path, "ok")
    path = config_file(
        tmp_path,
        resources=[
            {"type": "vip", "address": "192.0.2.25/24", "interface": "no-such-nic0"},
            {"type": "command", "start": [ok], "stop": [ok]},
        ],
    )
    code, text = check_report(path)
    assert code == 0, text
    assert f"{path}: note: resources[0].interface: no interface 'no-such-nic0'" in text
    os.chmod(ok, 0o644)
    code, text = check_report(path)
    assert code == 2
    assert text.splitlines() == [
        f"{path}: resources[1].start: {ok} is not executable (mode 0644): chmod +x it",
        f"{path}: resources[1].stop: {ok} is not executable (mode 0644): chmod +x it",
    ]


def test_failoverd_check_on_the_deploy_example_names_its_scripts_until_installed(
    tmp_path: Path,
) -> None:
    # The example as installed (credential and state dir in place, as in
    # test_config.py), on a host where its example scripts are not installed.
    secret = tmp_path / "zk.secret"
    write_credential(secret)
    text = (REPO / "deploy/examples/failoverd.yaml").read_text()
    text = text.replace("/etc/failoverd/zk.secret", str(secret))
    text = text.replace("/var/lib/failoverd", str(state_dir_for(tmp_path, "example")))
    path = tmp_path / "failoverd.yaml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "failoverd.main", "-c", str(path), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    missing = [
        (at, prog)
        for at, prog in [
            ("health.checks[3].argv", "/usr/local/bin/check-spool"),
            ("resources[0].start", "/usr/local/sbin/mailstore-mount"),
            ("fencing[1].argv", "/usr/local/sbin/pdu-off"),
        ]
        if not Path(prog).exists()
    ]
    assert done.returncode == (2 if missing else 0), done.stderr
    for at, prog in missing:
        assert f"{path}: {at}: {prog} does not exist" in done.stderr.splitlines()


# Debian 12's postfix units, as /lib/systemd/system has them: postfix.service only
# stands for the instances; the master runs in postfix@-.service.
DEBIAN_POSTFIX = """[Unit]
Description=Postfix Mail Transport Agent
Documentation=man:postfix(1)
Conflicts=sendmail.service exim4.service
ConditionPathExists=/etc/postfix/main.cf

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecReload=/bin/true

[Install]
WantedBy=multi-user.target
"""
DEBIAN_POSTFIX_INSTANCE = """[Unit]
Description=Postfix Mail Transport Agent (instance %i)
Documentation=man:postfix(1)
PartOf=postfix.service
Before=postfix.service
ReloadPropagatedFrom=postfix.service
After=network-online.target nss-lookup.target
Wants=network-online.target

[Service]
Type=forking
GuessMainPID=no
ExecStartPre=/usr/lib/postfix/configure-instance.sh %i
ExecStart=/usr/sbin/postmulti -i %i -p start
ExecStop=/usr/sbin/postmulti -i %i -p stop
ExecReload=/usr/sbin/postmulti -i %i -p reload

[Install]
WantedBy=multi-user.target
"""
DEBIAN_UNITS = {"postfix.service": DEBIAN_POSTFIX, "postfix@.service": DEBIAN_POSTFIX_INSTANCE}

# What systemd 252 answers to `systemctl show -p LoadState,Type,RemainAfterExit,ExecStart`.
SHOW_DEBIAN = """t=' ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null)'
t="$t ; status=0/0 }"
case "$4" in
postfix.service) printf '%s\\n' Type=oneshot RemainAfterExit=yes \\
  "ExecStart={ path=/bin/true ; argv[]=/bin/true$t" LoadState=loaded ;;
postfix@-.service) printf '%s\\n' Type=forking RemainAfterExit=no \\
  "ExecStart={ path=/usr/sbin/postmulti ; argv[]=/usr/sbin/postmulti -i - -p start$t" \\
  LoadState=loaded ;;
*) exit 1 ;;
esac
"""


def with_resources(tmp_path: Path, resources_yaml: str) -> Config:
    """The file as an operator writes it: a `resources:` section in YAML text."""
    path = Path(config_file(tmp_path))
    path.write_text(path.read_text() + resources_yaml)
    return load_config(str(path))


@pytest.mark.parametrize("systemctl", [NO_SYSTEMD, SHOW_DEBIAN], ids=["on-disk", "systemctl-show"])
def test_a_systemd_unit_that_only_stands_for_the_daemon_is_a_warning(
    tmp_path: Path, systemctl: str
) -> None:
    m = machine(tmp_path, unit_files=DEBIAN_UNITS, systemctl=systemctl)
    config = with_resources(
        tmp_path, "resources:\n  - {type: systemd, units: [postfix.service], timeout: 30s}\n"
    )
    found = host_checks(config, m)
    assert [(f.severity, f.at) for f in found] == [("warning", "resources[0].units")], found
    message = found[0].message
    assert message.startswith("postfix.service does not run the daemon itself (")
    assert "RemainAfterExit=yes" in message and "ExecStart=/bin/true" in message
    assert "postfix@-.service" in message
    config = with_resources(
        tmp_path, "resources:\n  - {type: systemd, units: [postfix@-.service], timeout: 30s}\n"
    )
    assert host_checks(config, m) == []


def test_a_drop_in_that_gives_the_wrapper_a_real_execstart_is_seen(tmp_path: Path) -> None:
    # Read from disk, the unit is what systemd would make of it: file, then drop-ins.
    m = machine(tmp_path, unit_files={"mta.service": DEBIAN_POSTFIX})
    dropins = tmp_path / "units" / "mta.service.d"
    dropins.mkdir()
    (dropins / "50-real.conf").write_text(
        "[Service]\nType=forking\nRemainAfterExit=no\nExecStart=\nExecStart=/usr/sbin/mta\n"
    )
    config = with_resources(tmp_path, "resources:\n  - {type: systemd, units: [mta.service]}\n")
    assert host_checks(config, m) == []
    (dropins / "60-back.conf").write_text("[Service]\nExecStart=\nExecStart=-/usr/bin/true\n")
    [found] = host_checks(config, m)
    assert "ExecStart=/usr/bin/true" in found.message


def test_the_postfix_dovecot_recipe_names_the_unit_that_runs_postfix(tmp_path: Path) -> None:
    secret = tmp_path / "zk.secret"
    write_credential(secret)
    text = (REPO / "deploy/examples/postfix-dovecot/failoverd.yaml").read_text()
    text = text.replace("/etc/failoverd/zk.secret", str(secret))
    text = text.replace("/var/lib/failoverd", str(state_dir_for(tmp_path, "recipe")))
    path = tmp_path / "failoverd.yaml"
    path.write_text(text)
    units = {
        **DEBIAN_UNITS,
        "dovecot.service": "[Service]\nType=notify\nExecStart=/usr/sbin/dovecot -F\n",
    }
    found = host_checks(load_config(str(path)), machine(tmp_path, unit_files=units))
    assert [f for f in found if f.at.endswith(".units")] == []


@pytest.mark.skipif(
    not Path("/lib/systemd/system/postfix@.service").exists(), reason="Debian's postfix not here"
)
def test_check_notes_debians_postfix_wrapper_and_is_quiet_about_its_instance(
    tmp_path: Path,
) -> None:
    # `failoverd --check` itself, on this host's own units (systemd running or not).
    path = Path(config_file(tmp_path))
    base = path.read_text()
    path.write_text(base + "resources:\n  - {type: systemd, units: [postfix.service]}\n")
    code, text = check_report(str(path))
    assert code == 0, text
    note = f"{path}: note: resources[0].units: postfix.service does not run the daemon itself"
    assert note in text
    path.write_text(base + "resources:\n  - {type: systemd, units: [postfix@-.service]}\n")
    code, text = check_report(str(path))
    assert code == 0 and "does not run the daemon" not in text, text
