"""What ``failoverd -c FILE --check`` prints: the file parsed (config/), then held
against this machine (checks/): its OCF agents, ZooKeeper access and the state dir
(preflight.py) and, unless told not to, the programs, units and interfaces it would
use (host.py)."""

from __future__ import annotations

from dataclasses import replace

from failoverd.checks.host import host_checks
from failoverd.checks.ocf import load_checked_config
from failoverd.checks.preflight import authorized_keys_notes, preflight
from failoverd.config import ConfigError


def check_report(path: str, machine: bool = True) -> tuple[int, str]:
    """The text --check prints, and its exit code (0 valid, 2 invalid).

    A valid file is also checked against this machine: its OCF agents (ocf.py),
    preflight.py (ZooKeeper access, the state dir, owners and modes) and, with
    `machine`, host.py (programs, units, interfaces, tools) and this node as a fence
    target. Errors there make it invalid too; warnings are notes."""
    try:
        config = load_checked_config(path)
    except ConfigError as e:
        return 2, "\n".join(e.problems)
    problems, notes = preflight(config)
    if machine:
        notes += authorized_keys_notes(config)
        for f in host_checks(config):
            if f.severity == "error":
                problems.append(f"{path}: {f.at}: {f.message}")
            else:
                notes.append(f"{f.at}: {f.message}")
    if problems:
        return 2, "\n".join(problems)
    config = replace(config, notes=(*config.notes, *notes))
    peers, methods = len(config.peers), [f.type for f in config.fencing]
    summary = (
        f"cluster {config.cluster}, node {config.node.name}, {peers} peer{'s' * (peers != 1)}, "
        f"{len(methods)} fencing method{'s' * (len(methods) != 1)}: {', '.join(methods)}"
    )
    return 0, "\n".join([f"{path}: OK ({summary})", *(f"{path}: note: {n}" for n in config.notes)])
