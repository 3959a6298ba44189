"""`failoverd --check` against this machine (failoverd/preflight.py): what would fail
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

from failoverd.config import check_report, load_config
from failoverd.preflight import Finding, Machine, preflight

REPO = Path(__file__).resolve().parents[2]


def program(tmp_path: Path, name: str, mode: int = 0o755) -> str:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(path, mode)
    return str(path)


def machine(
    tmp_path: Path,
    units: tuple[str, ...] = (),
    nics: tuple[str, ...] = ("eth0",),
    programs: tuple[str, ...] = ("systemctl", "ip", "arping"),
) -> Machine:
    unit_dir, net_dir = tmp_path / "units", tmp_path / "net"
    unit_dir.mkdir(exist_ok=True)
    net_dir.mkdir(exist_ok=True)
    for u in units:
        (unit_dir / u).write_text("[Service]\n")
    for n in nics:
        (net_dir / n).mkdir()
    return Machine(
        which=lambda p: f"/usr/bin/{p}" if p in programs else None,
        unit_dirs=(str(unit_dir),),
        net_dir=str(net_dir),
    )


def config_file(tmp_path: Path, **sections: Any) -> str:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    data: dict[str, Any] = {
        "cluster": "mail-east",
        "node": {"name": "mail1", "address": "10.0.0.11", "state_dir": str(state)},
        "peers": {"mail2": {"address": "10.0.0.12"}},
        "zookeeper": {"hosts": "zk1:2181"},
        "fencing": [{"type": "command", "argv": [program(tmp_path, "pdu-off"), "{node}"]}],
        **sections,
    }
    path = tmp_path / "failoverd.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def findings(tmp_path: Path, m: Machine | None = None, **sections: Any) -> list[Finding]:
    found = preflight(load_config(config_file(tmp_path, **sections)), m or machine(tmp_path))
    # The state dir under tmp_path is outside /var/lib/failoverd: that warning is
    # tested on its own below.
    return [f for f in found if f.at != "node.state_dir"]


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
    # hooks: is parsed by config.py once it exists; preflight reads any .argv there.
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
    found = preflight(with_hooks, machine(tmp_path))  # type: ignore[arg-type]
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


def test_an_unwritable_state_dir_is_an_error(tmp_path: Path) -> None:
    state = tmp_path / "state-file"
    state.write_text("")
    config = load_config(config_file(tmp_path))
    import dataclasses

    bad = dataclasses.replace(config, node=dataclasses.replace(config.node, state_dir=str(state)))
    found = preflight(bad, machine(tmp_path))
    assert Finding("error", "node.state_dir", f"{state} exists but is not a directory") in found


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere a mode allows; uses a ro fs")
def test_a_read_only_state_dir_is_an_error_for_non_root(tmp_path: Path) -> None:
    state = tmp_path / "ro"
    state.mkdir(mode=0o500)
    config = load_config(config_file(tmp_path))
    import dataclasses

    bad = dataclasses.replace(config, node=dataclasses.replace(config.node, state_dir=str(state)))
    assert any(f.severity == "error" and f.at == "node.state_dir" for f in preflight(bad))


def test_a_state_dir_on_a_read_only_file_system_is_an_error(tmp_path: Path) -> None:
    # /proc/1 is a directory nobody (not even root) can create files in.
    config = load_config(config_file(tmp_path))
    import dataclasses

    bad = dataclasses.replace(config, node=dataclasses.replace(config.node, state_dir="/proc/1"))
    (found,) = [f for f in preflight(bad, machine(tmp_path)) if f.severity == "error"]
    assert found.at == "node.state_dir"
    assert found.message.startswith("cannot write to /proc/1: ")


def test_the_state_dir_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path))
    preflight(config, machine(tmp_path))
    assert list((tmp_path / "state").iterdir()) == []


def test_a_state_dir_outside_the_units_writable_path_is_a_warning(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path))
    (found,) = [f for f in preflight(config, machine(tmp_path)) if f.at == "node.state_dir"]
    assert found.severity == "warning"
    assert f"add ReadWritePaths={tmp_path / 'state'}" in found.message


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
    assert f"{path}: warning: resources[0].interface: no interface 'no-such-nic0'" in text
    os.chmod(ok, 0o644)
    code, text = check_report(path)
    assert code == 2
    assert text.splitlines() == [
        f"{path}: resources[1].start: {ok} is not executable (mode 0644): chmod +x it",
        f"{path}: resources[1].stop: {ok} is not executable (mode 0644): chmod +x it",
    ]


def test_failoverd_check_on_the_deploy_example_names_its_scripts_until_installed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "failoverd.main", "-c", "deploy/examples/failoverd.yaml", "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert done.returncode == 2
    assert (
        "deploy/examples/failoverd.yaml: health.checks[3].argv: "
        "/usr/local/bin/check-spool does not exist" in done.stderr.splitlines()
    ) or Path("/usr/local/bin/check-spool").exists()
