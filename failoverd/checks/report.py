"""What ``failoverd -c FILE --check`` prints: the file parsed (config/), then held
against this machine (checks/): its OCF agents, ZooKeeper access and the state dir
(preflight.py) and, unless told not to, the programs, units and interfaces it would
use (host.py)."""

from __future__ import annotations

from dataclasses import replace

from failoverd.checks.host import host_checks
from failoverd.checks.ocf import load_checked_config
from failoverd.checks.preflight import authorized_keys_notes, preflight
from failoverd.config import Config, ConfigError
from failoverd.resources.started import RecordUnreadable, StartedRecord, differences


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
    notes += started_notes(config)
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


def started_notes(config: Config) -> list[str]:
    """A note when the file's resources differ from what this node started (its
    record in the state dir, resources/started.py): the edit takes effect at the
    next restart, and until then the running daemon keeps the old ones."""
    record = StartedRecord(config.node.state_dir)
    try:
        recorded = record.read()
    except RecordUnreadable as e:
        return [
            f"resources: the record of what this node started is unreadable ({e}): "
            "fence-self fails and the daemon does not contend until it is repaired or "
            "removed (stop what it named by hand first)"
        ]
    if recorded is None:
        return []
    started_only, file_only = differences(recorded, config.resources)
    if not started_only and not file_only:
        return []
    parts = [f"only started: {'; '.join(started_only)}"] if started_only else []
    parts += [f"only in the file: {'; '.join(file_only)}"] if file_only else []
    return [
        f"resources: differ from what this node started ({record.path}): {', '.join(parts)}; "
        "the running daemon keeps starting and stopping what it started until it restarts; "
        "fence-self and the start-up cleanup stop both"
    ]
