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
"""

from __future__ import annotations

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


@dataclass
class UnitService:
    """The [Service] settings that tell a wrapper from a unit that runs something."""

    remain_after_exit: bool = False
    exec_start: list[str] = field(default_factory=list)  # the program of each command


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
            _apply(path.read_text(errors="replace"), service)
    except OSError:
        return None
    return service


def _apply(text: str, service: UnitService) -> None:
    """One unit file's or drop-in's [Service] settings onto `service`
    (systemd.syntax(7): continuation lines, comments; an empty ExecStart= resets)."""
    section = ""
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        key, sep, value = line.partition("=")
        if section != "[Service]" or not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "RemainAfterExit":
            service.remain_after_exit = value.lower() in _TRUE
        elif key == "ExecStart":
            if not value:
                service.exec_start = []
            else:
                service.exec_start.append(value.split()[0].lstrip("-@:+!|"))
