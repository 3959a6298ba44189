"""What `failoverd --check` asks of *this host* for the config to work when it is
needed (a takeover at 3 a.m.): the programs it would run exist and are executable,
the systemd units and the VIP's interface exist (and each unit runs its daemon
itself rather than standing for it: units.py), `ip` and `arping` are installed,
and failoverd.service gives the active time enough to stop in order.
(Who owns those files and the state dir is failoverd/checks/preflight.py's concern.)

Two severities:

* **error** — will fail when it is needed: a missing or non-executable program, a
  unit file that is not installed, no `ip` for a VIP, a TimeoutStopSec that
  cuts the active's ordered stop short. `--check` exits 2; the daemon
  logs it at start (`preflight_failed`) and runs regardless.
* **warning** — may legitimately appear later or cannot be checked from here: a VIP
  interface created by another service (a bond, a VLAN), `systemctl` absent (a
  container without systemd), `arping` absent, a unit that only stands for the
  daemon (Debian's postfix.service). `--check` prints it as a note.

Everything here only looks; it never starts, stops or changes anything.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from failoverd.checks.programs import root_argvs
from failoverd.checks.units import MANAGER_CONF, stop_timeout, wrapper_reason
from failoverd.config import (
    Config,
    SystemdResourceConfig,
    VipResourceConfig,
)
from failoverd.config.reading import secs
from failoverd.config.timing import shutdown_time

# Where systemd looks for unit files (systemd.unit(5), system manager), most
# specific first. Checked on disk, so this works where systemd is not PID 1 too.
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/run/systemd/generator",
    "/run/systemd/generator.early",
    "/run/systemd/generator.late",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
NET_DIR = "/sys/class/net"
DAEMON_UNIT = "failoverd.service"


@dataclass(frozen=True)
class Finding:
    severity: Literal["error", "warning"]
    at: str  # key path, e.g. resources[2].start
    message: str


@dataclass(frozen=True)
class Machine:
    """Where to look; tests point these at a tmp_path."""

    which: Callable[[str], str | None] = shutil.which
    unit_dirs: Sequence[str] = UNIT_DIRS
    net_dir: str = NET_DIR
    systemctl: str | None = None  # the one on PATH (`which`) unless given
    manager_conf: Sequence[str] = MANAGER_CONF  # systemd's own config (its defaults)


def host_checks(config: Config, machine: Machine | None = None) -> list[Finding]:
    m = machine or Machine()
    found: list[Finding] = []
    for at, argv in _commands(config):
        found += _executable(at, argv, m)
    for i, res in enumerate(config.resources):
        at = f"resources[{i}]"
        if isinstance(res, SystemdResourceConfig):
            found += _systemd_units(at, res.units, m)
        elif isinstance(res, VipResourceConfig):
            found += _vip(at, res, m)
    found += _daemon_stop_timeout(config, m)
    return found


def _commands(config: Config) -> Iterable[tuple[str, Sequence[str]]]:
    """Every program the daemon may exec, with the key path that names it (the same
    list whose owners preflight.py checks)."""
    return root_argvs(config)


def _executable(at: str, argv: Sequence[str], m: Machine) -> list[Finding]:
    prog = argv[0] if argv else ""
    if not prog or "{" in prog:
        return []  # a placeholder such as "{node}" is filled in at run time
    if "/" not in prog:
        if m.which(prog) is None:
            path = os.environ.get("PATH", "")
            return [Finding("error", at, f"{prog!r} is not found on PATH ({path})")]
        return []
    try:
        st = os.stat(prog)
    except FileNotFoundError:
        return [Finding("error", at, f"{prog} does not exist")]
    except OSError as e:
        return [Finding("error", at, f"{prog} cannot be examined: {e.strerror or e}")]
    if not stat.S_ISREG(st.st_mode):
        return [Finding("error", at, f"{prog} is not a regular file")]
    if not os.access(prog, os.X_OK):
        mode = stat.S_IMODE(st.st_mode)
        return [Finding("error", at, f"{prog} is not executable (mode {mode:04o}): chmod +x it")]
    return []


def _systemd_units(at: str, units: Sequence[str], m: Machine) -> list[Finding]:
    if m.which("systemctl") is None:
        why = "systemctl is not installed here, so these units cannot be started or checked"
        return [Finding("warning", f"{at}.units", why)]
    out = []
    for unit in units:
        # foo@bar.service is an instance of the template foo@.service.
        names = [unit]
        if "@" in unit:
            prefix, _, rest = unit.partition("@")
            names.append(f"{prefix}@.{rest.rpartition('.')[2]}")
        if not any(Path(d, n).exists() for d in m.unit_dirs for n in names):
            out.append(
                Finding(
                    "error",
                    f"{at}.units",
                    f"no unit file for {unit} on this machine (is its package installed?)",
                )
            )
            continue
        wrapper = wrapper_reason(unit, m.systemctl or m.which("systemctl"), m.unit_dirs)
        if wrapper:
            out.append(Finding("warning", f"{at}.units", _wrapper_warning(unit, wrapper)))
    return out


def _wrapper_warning(unit: str, why: str) -> str:
    # failoverd/checks/units.py says why each of these matters.
    return (
        f"{unit} does not run the daemon itself ({why}): `systemctl is-active` calls it "
        "active after the daemon died, its stop can return before the daemon has exited, "
        "and the FAILOVERD_* drop-in reaches nothing; name the unit that runs the daemon "
        "(Debian's Postfix: postfix@-.service, not postfix.service)"
    )


def _daemon_stop_timeout(config: Config, m: Machine) -> list[Finding]:
    """failoverd.service's TimeoutStopSec against the longest the active may take to
    stop (config/timing.py): killed before it is done, the daemon leaves the
    breadcrumb unclean, and a planned handover becomes a fenced failover."""
    limit = stop_timeout(
        DAEMON_UNIT, m.systemctl or m.which("systemctl"), m.unit_dirs, m.manager_conf
    )
    need = shutdown_time(config)
    if limit is None or need.total < limit.seconds:
        return []
    advice = secs(10 * (int(need.total) // 10 + 2))  # a round number with some room
    return [
        Finding(
            "error",
            "resources",
            f"the active may take up to {secs(need.total)} to stop ({need.parts()}) but "
            f"{DAEMON_UNIT} allows {secs(limit.seconds)} (TimeoutStopSec, {limit.source}): "
            "systemd would kill the daemon mid-demotion and the handover would become a "
            f"fenced failover; set TimeoutStopSec={advice} in a drop-in "
            "(systemctl edit failoverd) or lower the resources' timeouts",
        )
    ]


def _vip(at: str, res: VipResourceConfig, m: Machine) -> list[Finding]:
    out = []
    if res.interface and not Path(m.net_dir, res.interface).exists():
        why = "adding the service IP fails unless it exists by then (a bond or VLAN may come later)"
        out.append(Finding("warning", f"{at}.interface", f"no interface {res.interface!r}: {why}"))
    if m.which("ip") is None:
        out.append(Finding("error", at, "'ip' (iproute2) is not installed: the VIP cannot move"))
    if m.which("arping") is None:
        why = (
            "the daemon sends its gratuitous ARP itself; arping is the fallback where "
            "it cannot open a raw packet socket (no CAP_NET_RAW), and without either "
            "clients and switches keep the old owner's address for minutes "
            "(apt-get install arping)"
        )
        out.append(Finding("warning", at, f"'arping' is not installed: {why}"))
    return out
