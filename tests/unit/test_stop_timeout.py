"""`failoverd --check` holds the active's ordered stop against failoverd.service's
TimeoutStopSec (failoverd/checks/host.py, units.py; the budget in config/timing.py).

Stopping the daemon on the active stops every resource in reverse order, each up
to its own timeout, marks the breadcrumb clean and releases the lease. systemd
kills it at TimeoutStopSec: too short, and every planned handover whose resources
stop slowly becomes a fenced failover. The unit file and drop-ins are real files
under tmp_path; the tests do not depend on this host's systemd.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from failoverd.checks.host import Finding, Machine, host_checks
from failoverd.checks.units import parse_timespan, stop_timeout
from failoverd.config import Config, load_config
from failoverd.config.timing import shutdown_time
from tests.support.access import state_dir_for, write_credential

REPO = Path(__file__).resolve().parents[2]

# 60 + 30 + 30 + 5 (the vip's default): 125 s of stop timeouts, as in the
# postfix-dovecot recipe; with the slack, ZooKeeper and hooks 138 s.
RESOURCES = """\
resources:
  - {type: command, start: [/bin/true], stop: [/bin/true], timeout: 60s}
  - {type: vip, address: 192.0.2.25/24, interface: eth0}
  - {type: systemd, units: [postfix@-.service], timeout: 30s}
  - {type: systemd, units: [dovecot.service], timeout: 30s}
"""


def config(tmp_path: Path, resources: str = RESOURCES) -> Config:
    secret = tmp_path / "zk.secret"
    write_credential(secret)
    path = tmp_path / "failoverd.yaml"
    path.write_text(
        f"""\
cluster: mail-east
node: {{name: mail1, address: 10.0.0.11, state_dir: {state_dir_for(tmp_path, "mail1")}}}
peers: {{mail2: {{address: 10.0.0.12}}}}
zookeeper:
  hosts: zk1:2181
  session_timeout: 3s
  auth: {{scheme: digest, credential_file: {secret}}}
fencing:
  - {{type: command, argv: [/bin/true, "{{node}}"]}}
{resources}"""
    )
    return load_config(str(path))


def machine(tmp_path: Path, files: dict[str, str], systemctl: str | None = None) -> Machine:
    units = tmp_path / "units"
    for name, text in files.items():
        (units / name).parent.mkdir(parents=True, exist_ok=True)
        (units / name).write_text(text)
    units.mkdir(exist_ok=True)
    program = None
    if systemctl is not None:
        program = tmp_path / "systemctl"
        program.write_text("#!/bin/sh\n" + systemctl)
        os.chmod(program, 0o755)
    return Machine(
        which=lambda _: None,
        unit_dirs=(str(units),),
        net_dir=str(tmp_path),
        systemctl=str(program) if program else None,
        manager_conf=(str(tmp_path / "system.conf"), str(tmp_path / "system.conf.d")),
    )


def stop_findings(cfg: Config, m: Machine) -> list[Finding]:
    return [f for f in host_checks(cfg, m) if "TimeoutStopSec" in f.message]


UNIT = "[Unit]\nDescription=failoverd\n[Service]\nType=notify\nTimeoutStopSec=120s\n"


def test_a_stop_timeout_shorter_than_the_active_needs_is_an_error_naming_both(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    assert shutdown_time(cfg).total == 138.0
    m = machine(tmp_path, {"failoverd.service": UNIT})
    [found] = stop_findings(cfg, m)
    unit = tmp_path / "units" / "failoverd.service"
    assert found == Finding(
        "error",
        "resources",
        "the active may take up to 138s to stop (the resources' stop timeouts 125s + 5s, "
        f"ZooKeeper 3s, hooks 5s) but failoverd.service allows 120s (TimeoutStopSec, {unit}): "
        "systemd would kill the daemon mid-demotion and the handover would become a fenced "
        "failover; set TimeoutStopSec=150s in a drop-in (systemctl edit failoverd) or "
        "lower the resources' timeouts",
    )


def test_a_drop_in_that_raises_the_stop_timeout_satisfies_it(tmp_path: Path) -> None:
    files = {
        "failoverd.service": UNIT,
        "failoverd.service.d/override.conf": "[Service]\nTimeoutStopSec=3min\n",
    }
    assert stop_findings(config(tmp_path), machine(tmp_path, files)) == []


def test_timeoutsec_in_a_later_drop_in_sets_the_stop_timeout_too(tmp_path: Path) -> None:
    files = {
        "failoverd.service": "[Service]\nTimeoutStopSec=10min\n",
        "failoverd.service.d/50-short.conf": "[Service]\nTimeoutSec=2min\n",
    }
    [found] = stop_findings(config(tmp_path), machine(tmp_path, files))
    assert "allows 120s" in found.message and "50-short.conf" in found.message


def test_what_systemd_shows_wins_over_the_files(tmp_path: Path) -> None:
    files = {"failoverd.service": "[Service]\nTimeoutStopSec=10min\n"}
    shown = "echo LoadState=loaded; echo TimeoutStopUSec=2min\n"
    [found] = stop_findings(config(tmp_path), machine(tmp_path, files, systemctl=shown))
    assert "allows 120s (TimeoutStopSec, systemctl show failoverd.service)" in found.message
    enough = "echo LoadState=loaded; echo TimeoutStopUSec=2min 30s\n"
    assert stop_findings(config(tmp_path), machine(tmp_path, files, systemctl=enough)) == []


def test_a_unit_without_a_stop_timeout_gets_the_managers_default(tmp_path: Path) -> None:
    m = machine(tmp_path, {"failoverd.service": "[Service]\nType=notify\n"})
    [found] = stop_findings(config(tmp_path), m)
    assert "allows 90s" in found.message and "DefaultTimeoutStopSec" in found.message
    (tmp_path / "system.conf.d").mkdir()
    (tmp_path / "system.conf.d" / "stop.conf").write_text("[Manager]\nDefaultTimeoutStopSec=5min\n")
    assert stop_findings(config(tmp_path), m) == []


def test_no_unit_installed_and_no_timeout_at_all_say_nothing(tmp_path: Path) -> None:
    assert stop_findings(config(tmp_path), machine(tmp_path, {})) == []
    forever = {"failoverd.service": "[Service]\nTimeoutStopSec=infinity\n"}
    assert stop_findings(config(tmp_path), machine(tmp_path, forever)) == []


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("120s", 120.0),
        ("120", 120.0),
        ("2min", 120.0),
        ("1min 30s", 90.0),
        ("1h 2min", 3720.0),
        ("500ms", 0.5),
        ("infinity", math.inf),
        ("0", math.inf),  # a stop timeout of 0 is none at all
        ("soon", None),
        ("5s later", None),
        ("", None),
    ],
)
def test_systemd_time_spans(text: str, seconds: float | None) -> None:
    assert parse_timespan(text) == seconds


@pytest.mark.parametrize(
    "example", ["deploy/examples/failoverd.yaml", "deploy/examples/postfix-dovecot/failoverd.yaml"]
)
def test_the_shipped_unit_leaves_each_example_time_to_stop(tmp_path: Path, example: str) -> None:
    secret = tmp_path / "zk.secret"
    write_credential(secret)
    text = (REPO / example).read_text().replace("/etc/failoverd/zk.secret", str(secret))
    text = text.replace("/var/lib/failoverd", str(state_dir_for(tmp_path, "example")))
    path = tmp_path / "failoverd.yaml"
    path.write_text(text)
    need = shutdown_time(load_config(str(path))).total
    units = tmp_path / "units"
    units.mkdir()
    (units / "failoverd.service").write_text((REPO / "deploy/failoverd.service").read_text())
    limit = stop_timeout("failoverd.service", None, [str(units)])
    assert limit is not None
    assert need < limit.seconds, f"{example} needs {need}s, the unit allows {limit.seconds}s"
