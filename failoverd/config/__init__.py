"""The node's configuration, parsed once into frozen dataclasses.

Durations are resolved to float seconds, unknown keys are errors (a typo must not
silently disable fencing) and every problem is reported as ``FILE: key.path: message``.

model.py      the parsed shape (Config and its parts) and ConfigError
schema.py     every key the file may have: the parsers' allowed keys, and the docs'
reference.py  the key reference (docs/config-reference.md) rendered from schema.py
reading.py    the YAML reader and the typed getters that record each problem
zookeeper.py  the zookeeper: section (auth, operators, TLS)
resources.py  the resources: list
fencing.py    the fencing: list
sections.py   node, peers, health, watchdog, metrics, hooks, log
timing.py     the timing budget across sections
load.py       load_config
operator.py   an operator's own failoverctl config, and where a user keeps it

Only parsing: nothing here looks at the machine beyond the files the config
names (checks/ does, checks/report.py is what --check prints), and this package
imports nothing of failoverd outside it. An OCF agent's params are checked against
the agent only through the check a caller hands to load_config (checks/ocf.py).
This __init__ re-exports the model and load_config: every layer reads config.
"""

from failoverd.config.load import load_config
from failoverd.config.model import (
    HOOK_EVENTS,
    CheckConfig,
    CommandFencerConfig,
    CommandResourceConfig,
    Config,
    ConfigError,
    FencerConfig,
    FlapConfig,
    HealthConfig,
    HookConfig,
    LeaseWaitFencerConfig,
    LogConfig,
    MetricsConfig,
    NodeConfig,
    OcfResourceConfig,
    OperatorConfig,
    PeerConfig,
    ResourceConfig,
    SshFencerConfig,
    SwitchoverConfig,
    SystemdResourceConfig,
    VipResourceConfig,
    WatchdogConfig,
    ZkAuthConfig,
    ZkTlsConfig,
    ZooKeeperConfig,
)

__all__ = [
    "HOOK_EVENTS",
    "CheckConfig",
    "CommandFencerConfig",
    "CommandResourceConfig",
    "Config",
    "ConfigError",
    "FencerConfig",
    "FlapConfig",
    "HealthConfig",
    "HookConfig",
    "LeaseWaitFencerConfig",
    "LogConfig",
    "MetricsConfig",
    "NodeConfig",
    "OcfResourceConfig",
    "OperatorConfig",
    "PeerConfig",
    "ResourceConfig",
    "SshFencerConfig",
    "SwitchoverConfig",
    "SystemdResourceConfig",
    "VipResourceConfig",
    "WatchdogConfig",
    "ZkAuthConfig",
    "ZkTlsConfig",
    "ZooKeeperConfig",
    "load_config",
]
