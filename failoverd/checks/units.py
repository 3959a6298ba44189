"""Does a `systemd` resource's unit run the daemon itself, or only stand for it?

Debian's postfix.service is `Type=oneshot`, `RemainAfterExit=yes`,
`ExecStart=/bin/true`: the master runs in postfix@-.service (`PartOf=` the
wrapper). Named as a resource, such a unit defeats what failoverd asks of it:

* `systemctl is-active` says "active" after the daemon died (it never ran
  anything), so the resource watch and the abandoned-work sweep cannot see it;
* the FAILOVERD_* drop-in (failoverd/resources/systemd_dropin.py) reaches
  /bin/true, not the daemon;
* its stop job finishes before the daemon's unit has stopped.

So `--check` warns about a unit whose every ExecStart is `true` (or that has
none) or that has `RemainAfterExit=yes`. What systemd shows (`systemctl show`) is
asked first; where systemd is not running (a chroot, a container, an image being
built) the unit file and its drop-ins are read from disk instead.

The same goes for failoverd.service's own TimeoutStopSec (`stop_timeout`), which
must leave the active time to stop its resources in order (host.py).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from failoverd.resources.systemd import unit_properties

SHOWN = ("LoadState", "Type", "RemainAfterExit", "ExecStart")
SHOW_TIMEOUT = 5.0
_SHOWN_PATH = re.compile(r"path=([^ ;]+)")
_TRUE = ("yes", "true", "on", "1")


# systemd's DefaultTimeoutStopSec= (systemd-system.conf(5)), where a unit sets none,
# unless the manager's own config changes it.
DEFAULT_STOP_TIMEOUT = 90.0
MANAGER_CONF = (
    "/etc/systemd/system.conf",
    "/etc/systemd/system.conf.d",
    "/run/systemd/system.conf.d",
    "/usr/local/lib/systemd/system.conf.d",
    "/usr/lib/systemd/system.conf.d",
)
# systemd.time(7): the units of a time span.
_SPAN_UNITS = {
    **dict.fromkeys(("us", "usec", "µs", "μs"), 1e-6),
    **dict.fromkeys(("ms", "msec"), 1e-3),
    **dict.fromkeys(("", "s", "sec", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "week", "weeks"), 604800.0),
    **dict.fromkeys(("M", "month", "months"), 2629800.0),
    **dict.fromkeys(("y", "year", "years"), 31557600.0),
}
_SPAN_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Zµμ]*)")
_SPAN = re.compile(rf"(?:{_SPAN_PART.pattern}\s*)+")


@dataclass
class UnitService:
    """The [Service] settings that tell a wrapper from a unit that runs something,
    and the stop timeout (`stop_timeout`)."""

    remain_after_exit: bool = False
    exec_start: list[str] = field(default_factory=list)  # the program of each command
    # TimeoutStopSec (or TimeoutSec), seconds, math.inf for none; None: not set.
    timeout_stop: float | None = None
    timeout_stop_at: str = ""  # the file that set it


def wrapper_reason(unit: str, systemctl: str | None, unit_dirs: Sequence[str]) -> str | None:
    """Why `unit` does not run a daemon itself (None when it does, or cannot be read)."""
    service = _shown(unit, systemctl) if systemctl else None
    if service is None:
        service = read_unit(unit, unit_dirs)
    if service is None:
        return None
    why = []
    if not service.exec_start:
        why.append("no ExecStart")
    elif all(os.path.basename(prog) == "true" for prog in service.exec_start):
        why.append("ExecStart=" + " ".join(service.exec_start))
    if service.remain_after_exit:
        why.append("RemainAfterExit=yes")
    return ", ".join(why) or None


def _shown(unit: str, systemctl: str) -> UnitService | None:
    """What systemd made of the unit (file, drop-ins, generators); None where it
    cannot say (not running, the unit not loaded: then the files on disk are read)."""
    props = unit_properties(systemctl, unit, SHOWN, {}, SHOW_TIMEOUT)
    if props is None or props.get("LoadState") != "loaded":
        return None
    return UnitService(
        remain_after_exit=props.get("RemainAfterExit") == "yes",
        exec_start=_SHOWN_PATH.findall(props.get("ExecStart", "")),
    )


@dataclass(frozen=True)
class StopTimeout:
    seconds: float  # math.inf: systemd waits for ever
    source: str  # where it was read, for the message


def stop_timeout(
    unit: str,
    systemctl: str | None,
    unit_dirs: Sequence[str],
    manager_conf: Sequence[str] = MANAGER_CONF,
) -> StopTimeout | None:
    """How long systemd lets `unit` stop before it kills it; None when the unit is
    not installed here (or masked) or systemd's answer cannot be read."""
    if systemctl:
        props = unit_properties(systemctl, unit, ("LoadState", "TimeoutStopUSec"), {}, SHOW_TIMEOUT)
        if props is not None and props.get("LoadState") == "loaded":
            seconds = parse_timespan(props.get("TimeoutStopUSec", ""))
            shown = f"systemctl show {unit}"
            return None if seconds is None else StopTimeout(seconds, shown)
    service = read_unit(unit, unit_dirs)
    if service is None:
        return None
    if service.timeout_stop is not None:
        return StopTimeout(service.timeout_stop, service.timeout_stop_at)
    return _default_stop_timeout(manager_conf)


def _default_stop_timeout(manager_conf: Sequence[str]) -> StopTimeout:
    """DefaultTimeoutStopSec from the manager's config file and its drop-ins."""
    found = StopTimeout(DEFAULT_STOP_TIMEOUT, "systemd's default DefaultTimeoutStopSec")
    files = [Path(p) for p in manager_conf if not Path(p).is_dir()]
    dropins: dict[str, Path] = {}
    for p in manager_conf:
        if Path(p).is_dir():
            for conf in Path(p).glob("*.conf"):
                dropins.setdefault(conf.name, conf)
    for path in [*files, *(dropins[name] for name in sorted(dropins))]:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for key, value in _settings(text, "[Manager]"):
            seconds = parse_timespan(value) if key == "DefaultTimeoutStopSec" else None
            if seconds is not None:
                found = StopTimeout(seconds, f"DefaultTimeoutStopSec in {path}")
    return found


def parse_timespan(text: str) -> float | None:
    """A systemd time span ("2min 30s", "90", "500ms", "infinity") in seconds;
    math.inf for no timeout at all (infinity, or 0, which means the same for a
    stop timeout); None when it is not one."""
    text = text.strip()
    if text == "infinity":
        return math.inf
    if not _SPAN.fullmatch(text):
        return None
    parts = _SPAN_PART.findall(text)
    if any(unit not in _SPAN_UNITS for _, unit in parts):
        return None
    return sum(float(n) * _SPAN_UNITS[unit] for n, unit in parts) or math.inf


def read_unit(unit: str, unit_dirs: Sequence[str]) -> UnitService | None:
    """The unit's [Service] as systemd would read it from these directories: the
    first unit file found (an instance's own file, else its template's), then the
    drop-ins (<unit>.d/*.conf, the template's too) in file-name order, the first
    directory winning for a name. None when there is no file or it is masked."""
    names = [unit]
    if "@" in unit:
        prefix, _, rest = unit.partition("@")
        names.insert(0, f"{prefix}@.{rest.rpartition('.')[2]}")  # the template's first
    main = next(
        (Path(d, n) for n in reversed(names) for d in unit_dirs if Path(d, n).exists()), None
    )
    if main is None or main.resolve() == Path("/dev/null"):
        return None
    dropins: dict[str, Path] = {}
    for d in unit_dirs:
        for n in names:
            folder = Path(d, f"{n}.d")
            if folder.is_dir():
                for conf in folder.glob("*.conf"):
                    dropins.setdefault(conf.name, conf)
    service = UnitService()
    try:
        for path in [main, *(dropins[name] for name in sorted(dropins))]:
            _apply(path.read_text(errors="replace"), service, str(path))
    except OSError:
        return None
    return service


def _settings(text: str, wanted: str) -> list[tuple[str, str]]:
    """The key=value lines of one section of a systemd file, in order
    (systemd.syntax(7): continuation lines, comments)."""
    section, out = "", []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        key, sep, value = line.partition("=")
        if section == wanted and sep:
            out.append((key.strip(), value.strip()))
    return out


def _apply(text: str, service: UnitService, where: str) -> None:
    """One unit file's or drop-in's [Service] settings onto `service`
    (an empty ExecStart= resets; TimeoutSec= sets the stop timeout too)."""
    for key, value in _settings(text, "[Service]"):
        if key in ("TimeoutStopSec", "TimeoutSec"):
            seconds = parse_timespan(value)
            if seconds is not None:
                service.timeout_stop, service.timeout_stop_at = seconds, where
        elif key == "RemainAfterExit":
            service.remain_after_exit = value.lower() in _TRUE
        elif key == "ExecStart":
            if not value:
                service.exec_start = []
            else:
                service.exec_start.append(value.split()[0].lstrip("-@:+!|"))
