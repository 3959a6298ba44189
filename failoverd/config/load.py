"""Reading one node's file into a Config (load_config) and what --check prints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from failoverd.config.fencing import _FENCERS, _fencer
from failoverd.config.model import Config, ConfigError, FlapConfig, SwitchoverConfig
from failoverd.config.reading import _Findings, _read_yaml, _Section, _typed
from failoverd.config.resources import _RESOURCES, _resource
from failoverd.config.sections import (
    _NODE,
    _health,
    _hooks,
    _log,
    _metrics,
    _node,
    _peers,
    _watchdog,
)
from failoverd.config.timing import _check_timing
from failoverd.config.zookeeper import _ZOOKEEPER, _zookeeper

# The keys the top level may have (each section's own are next to its parser).
_TOP = "cluster node peers zookeeper health resources fencing watchdog switchover flap metrics log"
_TOP += " hooks"


def _parse(path: str, data: Mapping[Any, Any], found: _Findings) -> Config:
    root = _Section(found, "", data, _TOP)
    cluster = root.name("cluster")
    node = _node(root.section("node", _NODE))
    peers = _peers(root, node.name)
    zookeeper = _zookeeper(root.section("zookeeper", _ZOOKEEPER))
    health = _health(root.section("health", "interval rise fall checks grace"))
    resources = [
        _resource(*t)
        for at, v in root.items("resources")
        if (t := _typed(found, at, v, _RESOURCES))
    ]
    watchdog = _watchdog(root)
    fencing_items = root.items("fencing")
    if not fencing_items and found.ok("fencing"):
        why = "a node must be able to fence its peer before it takes over"
        found.problem("fencing", f"no fencing method configured: {why}")
    fencing = [
        _fencer(*t, health, watchdog)
        for at, v in fencing_items
        if (t := _typed(found, at, v, _FENCERS))
    ]
    switchover = root.section("switchover", "timeout")
    flap = root.section("flap", "max_failovers window backoff")
    return Config(
        path=path,
        cluster=cluster,
        node=node,
        peers=peers,
        zookeeper=zookeeper,
        health=health,
        resources=tuple(resources),
        fencing=tuple(fencing),
        watchdog=watchdog,
        switchover=SwitchoverConfig(
            timeout=switchover.duration("timeout", SwitchoverConfig.timeout)
        ),
        flap=FlapConfig(
            max_failovers=flap.integer("max_failovers", FlapConfig.max_failovers, 1),
            window=flap.duration("window", FlapConfig.window),
            backoff=flap.duration("backoff", FlapConfig.backoff, zero_ok=True),
        ),
        metrics=_metrics(root),
        log=_log(root.section("log", "format level")),
        hooks=_hooks(root),
    )


def load_config(path: str) -> Config:
    """Read, parse and validate one node's config file; raise ConfigError listing every problem."""
    found = _Findings(path)
    config = _parse(path, _read_yaml(path), found)
    _check_timing(config, found)
    if found.problems:
        raise ConfigError(found.problems)
    return replace(config, notes=tuple(found.notes))


def check_report(path: str, machine: bool = True) -> tuple[int, str]:
    """What ``failoverd -c FILE --check`` prints, and its exit code (0 valid, 2 invalid).

    A valid file is also checked against this machine: preflight.py (ZooKeeper access,
    the state dir, owners and modes) and, with `machine`, host_checks.py (programs,
    units, interfaces, tools). Errors there make it invalid too; warnings are notes."""
    try:
        config = load_config(path)
    except ConfigError as e:
        return 2, "\n".join(e.problems)
    from failoverd.checks.preflight import (
        preflight,  # the machine's side: access, state dir, owners
    )

    problems, notes = preflight(config)
    if machine:
        from failoverd.checks.host import host_checks  # programs, units, interfaces, tools
        from failoverd.checks.preflight import authorized_keys_notes  # this node as a fence target

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
