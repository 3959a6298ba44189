"""FAILOVERD_* for `systemd` resources (the resource environment).

`systemctl start` hands our environment to the systemctl client only; the unit runs
with the environment systemd gives it. So before each start the daemon writes, per
unit, a runtime drop-in

    /run/systemd/system/<unit>.d/50-failoverd.conf
        [Service]
        Environment="FAILOVERD_CLUSTER=mail-east" "FAILOVERD_NODE=mail1" "FAILOVERD_EPOCH=7"

and runs `systemctl daemon-reload`, so the unit's processes (ExecStartPre=,
ExecStart=, ExecStop=, ...) see the epoch they serve. Why a drop-in and not
`systemctl set-environment`: that sets the manager's environment for *every* unit
started afterwards, including ones that have nothing to do with failoverd.

/run is a tmpfs: a reboot forgets the drop-ins, and a stop removes them (without a
daemon-reload, which would only slow the demotion down; the next start by failoverd
writes a fresh one and reloads before it starts anything).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

# Runtime units: read by systemd, lost at reboot. Tests pass their own directory.
RUNTIME_UNIT_DIR = Path("/run/systemd/system")
DROPIN_NAME = "50-failoverd.conf"
PASSED = ("FAILOVERD_CLUSTER", "FAILOVERD_NODE", "FAILOVERD_EPOCH")


def dropin_path(unit_dir: Path, unit: str) -> Path:
    if not unit or "/" in unit or unit in (".", ".."):
        raise ValueError(f"{unit!r} is not a unit name")
    return unit_dir / f"{unit}.d" / DROPIN_NAME


def _quoted(assignment: str) -> str:
    """One Environment= word: double-quoted, with systemd's escapes; '%' is doubled
    because systemd expands %-specifiers in Environment=."""
    if "\n" in assignment or "\r" in assignment:
        raise ValueError(f"a newline cannot be passed in Environment=: {assignment!r}")
    escaped = assignment.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def dropin_text(env: Mapping[str, str]) -> str:
    words = " ".join(_quoted(f"{key}={env.get(key, '')}") for key in PASSED)
    return (
        "# Written by failoverd before it starts this unit; removed when it stops it.\n"
        f"[Service]\nEnvironment={words}\n"
    )


def write_dropins(unit_dir: Path, units: Iterable[str], env: Mapping[str, str]) -> list[Path]:
    """Write (atomically: tmp file + rename) one drop-in per unit; raises OSError or
    ValueError. systemd reads them only after `systemctl daemon-reload`."""
    text = dropin_text(env).encode()
    written = []
    for unit in units:
        path = dropin_path(unit_dir, unit)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{DROPIN_NAME}.tmp.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, text)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        written.append(path)
    return written


def remove_dropins(unit_dir: Path, units: Iterable[str]) -> list[str]:
    """Remove the drop-ins; never raises. Returns one problem per drop-in left behind."""
    problems = []
    for unit in units:
        try:
            dropin_path(unit_dir, unit).unlink(missing_ok=True)
        except (OSError, ValueError) as e:
            problems.append(f"{unit}: {e}")
    return problems
