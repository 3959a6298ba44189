"""Reading one node's file into a Config (load_config). What --check prints on top of
this is failoverd/checks/report.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from failoverd.config.fencing import FENCER_KEYS, fencer_config
from failoverd.config.model import Config, ConfigError, FlapConfig, SwitchoverConfig
from failoverd.config.reading import AgentCheck, Findings, Section, read_yaml, typed_item
from failoverd.config.resources import RESOURCE_KEYS, check_order, resource_config
from failoverd.config.schema import keys
from failoverd.config.sections import (
    NODE_KEYS,
    health_config,
    hook_configs,
    log_config,
    metrics_config,
    node_config,
    peer_configs,
    watchdog_config,
)
from failoverd.config.timing import check_timing
from failoverd.config.zookeeper import ZOOKEEPER_KEYS, zookeeper_config


def _parse(path: str, data: Mapping[Any, Any], found: Findings) -> Config:
    root = Section(found, "", data, keys(""))
    cluster = root.name("cluster")
    node = node_config(root.section("node", NODE_KEYS))
    peers = peer_configs(root, node.name)
    zookeeper = zookeeper_config(root.section("zookeeper", ZOOKEEPER_KEYS))
    health = health_config(root.section("health", keys("health")))
    resources = [
        (at, resource_config(*t))
        for at, v in root.items("resources")
        if (t := typed_item(found, at, v, RESOURCE_KEYS))
    ]
    check_order(found, resources)
    watchdog = watchdog_config(root)
    fencing_items = root.items("fencing")
    if not fencing_items and found.ok("fencing"):
        why = "a node must be able to fence its peer before it takes over"
        found.problem("fencing", f"no fencing method configured: {why}")
    fencing = [
        fencer_config(*t, health, watchdog)
        for at, v in fencing_items
        if (t := typed_item(found, at, v, FENCER_KEYS))
    ]
    switchover = root.section("switchover", keys("switchover"))
    flap = root.section("flap", keys("flap"))
    return Config(
        path=path,
        cluster=cluster,
        node=node,
        peers=peers,
        zookeeper=zookeeper,
        health=health,
        resources=tuple(c for _, c in resources),
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
        metrics=metrics_config(root),
        log=log_config(root.section("log", keys("log"))),
        hooks=hook_configs(root),
    )


def load_config(path: str, agents: AgentCheck | None = None) -> Config:
    """Read, parse and validate one node's config file; raise ConfigError listing every problem.

    `agents` checks each `ocf` resource's agent and params on this machine
    (checks/ocf.py); without it the parser takes them as written."""
    found = Findings(path, agents)
    config = _parse(path, read_yaml(path), found)
    check_timing(config, found)
    if found.problems:
        raise ConfigError(found.problems)
    return replace(config, notes=tuple(found.notes))
