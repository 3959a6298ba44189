"""What `failoverd --check` asks of *this machine*, beyond the file's own validity.

config.py judges the file; this module judges whether the node can actually do
what the file says, at the moment it has to (a takeover at 3 a.m.): the programs
it would run exist and are executable, the systemd units and the VIP's interface
exist, and the state dir (fence marker, its lock) can be written.

Two severities:

* **error** — will fail when it is needed: a missing or non-executable program, an
  unusable state dir, a unit file that is not installed. `--check` exits 2.
* **warning** — may legitimately appear later or cannot be checked from here: a VIP
  interface created by another service (a bond, a VLAN), `systemctl` absent (a
  container without systemd), `arping` absent. `--check` still exits 0.

Everything here only looks; it never starts, stops or changes anything except one
probe file in the state dir, removed at once.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from failoverd.config import (
    CommandFencerConfig,
    CommandResourceConfig,
    Config,
    SystemdResourceConfig,
    VipResourceConfig,
)

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
# The only writable path under deploy/failoverd.service (ProtectSystem=strict).
UNIT_STATE_DIR = "/var/lib/failoverd"


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


def preflight(config: Config, machine: Machine | None = None) -> list[Finding]:
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
    found += _state_dir(config.node.state_dir)
    return found


def _commands(config: Config) -> Iterable[tuple[str, Sequence[str]]]:
    """Every program the daemon may exec, with the key path that names it."""
    for i, check in enumerate(config.health.checks):
        if check.type == "command":
            yield f"health.checks[{i}].argv", check.argv
    for i, res in enumerate(config.resources):
        if isinstance(res, CommandResourceConfig):
            for name in ("start", "stop", "status"):
                argv = getattr(res, name)
                if argv:
                    yield f"resources[{i}].{name}", argv
    for i, fencer in enumerate(config.fencing):
        if isinstance(fencer, CommandFencerConfig):
            yield f"fencing[{i}].argv", fencer.argv
    # `hooks:` (DESIGN.md §9) is parsed elsewhere; check its programs if present.
    for i, hook in enumerate(getattr(config, "hooks", None) or ()):
        argv = getattr(hook, "argv", None)
        if argv:
            yield f"hooks[{i}].argv", argv


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
    return out


def _vip(at: str, res: VipResourceConfig, m: Machine) -> list[Finding]:
    out = []
    if res.interface and not Path(m.net_dir, res.interface).exists():
        why = "adding the service IP fails unless it exists by then (a bond or VLAN may come later)"
        out.append(Finding("warning", f"{at}.interface", f"no interface {res.interface!r}: {why}"))
    if m.which("ip") is None:
        out.append(Finding("error", at, "'ip' (iproute2) is not installed: the VIP cannot move"))
    if m.which("arping") is None:
        why = (
            "no gratuitous ARP after a takeover: clients and switches keep the old "
            "owner's address for minutes (apt-get install arping)"
        )
        out.append(Finding("warning", at, f"'arping' is not installed: {why}"))
    return out


def _state_dir(state_dir: str) -> list[Finding]:
    """The fence marker and its lock live here: a fence that cannot write its marker
    fails, and a daemon that cannot take the lock starts no resource."""
    at = "node.state_dir"
    out = []
    if not os.path.isabs(state_dir):
        return [Finding("error", at, f"{state_dir} is not an absolute path")]
    if os.path.lexists(state_dir) and not os.path.isdir(state_dir):
        return [Finding("error", at, f"{state_dir} exists but is not a directory")]
    if os.path.isdir(state_dir):
        try:
            fd, probe = tempfile.mkstemp(prefix=".failoverd-check-", dir=state_dir)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            out.append(Finding("error", at, f"cannot write to {state_dir}: {e.strerror or e}"))
    else:
        parent = state_dir
        while not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            why = f"it does not exist and {parent} is not writable to create it"
            out.append(Finding("error", at, f"{state_dir}: {why}"))
    norm = os.path.normpath(state_dir)
    if norm != UNIT_STATE_DIR and not norm.startswith(UNIT_STATE_DIR + "/"):
        out.append(
            Finding(
                "warning",
                at,
                f"{state_dir} is outside {UNIT_STATE_DIR}, the only path deploy/failoverd.service "
                f"lets the daemon write (ProtectSystem=strict): add ReadWritePaths={state_dir} "
                "in a drop-in",
            )
        )
    return out
