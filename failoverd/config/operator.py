"""An operator's own failoverctl config: what a person who is not root needs to
reach the cluster, and nothing of a node's (no fencing, no resources, no secret
of the nodes).

    cluster: mail
    members: [mail1, mail2]
    zookeeper:                  # the node config's section: hosts, root, tls, auth.scheme
      hosts: zk1:2281,zk2:2281,zk3:2281
      auth: {scheme: sasl}
      tls: {ca: /etc/failoverd/zk-ca.pem}
    operator:
      credential: ~/.config/failoverd/zk-credential

The top-level `operator:` mapping is what makes a file an operator config: a
node's config may not have that key, so failoverctl can never mistake one for
the other. `members` lists every node of the cluster, because a stopped node has
no znode to be found by, and the control znode must be written in a format every
member reads. `zookeeper.auth` may say only the scheme: its credential_file is
the nodes' secret, which the operator's `operator.credential` replaces.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from failoverd.config.load import load_config
from failoverd.config.model import (
    Config,
    ConfigError,
    NodeConfig,
    OperatorConfig,
    PeerConfig,
    SwitchoverConfig,
    ZkAuthConfig,
)
from failoverd.config.reading import NAME_PATTERN, Findings, Section, read_yaml
from failoverd.config.zookeeper import ZOOKEEPER_KEYS, zookeeper_config

_TOP = "cluster members zookeeper switchover operator"
USER_CONFIG = "failoverd/failoverctl.yaml"


def user_home() -> str | None:
    """$HOME, else the passwd entry's home (HOME is unset under `env -i` or cron)."""
    home = os.environ.get("HOME")
    if home:
        return home
    try:
        return pwd.getpwuid(os.getuid()).pw_dir or None
    except KeyError:  # a uid without a passwd entry (a container's)
        return None


def user_config_path() -> str | None:
    """$XDG_CONFIG_HOME/failoverd/failoverctl.yaml, else ~/.config/failoverd/..., or
    None when there is no home to put it in. Whether it exists is the caller's question."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is to be ignored
        return os.path.join(xdg, USER_CONFIG)
    home = user_home()
    return os.path.join(home, ".config", USER_CONFIG) if home else None


def _expand(path: str, config_path: str) -> str:
    """`~/x` from the user's home (without reading HOME unguarded), a relative path
    from the config file's directory: the same file whatever the working directory."""
    if path == "~" or path.startswith("~/"):
        home = user_home()
        if home:
            path = os.path.join(home, path[2:])
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config_path)), path))


def is_operator_config(data: Mapping[Any, Any]) -> bool:
    return "operator" in data


def load_failoverctl_config(path: str) -> Config | OperatorConfig:
    """The file failoverctl was given: a node's config or an operator's (module
    docstring), told apart by the top-level `operator:` key. ConfigError lists
    every problem, each as ``FILE: key: message``."""
    data = read_yaml(path)
    if not is_operator_config(data):
        return load_config(path)
    found = Findings(path)
    config = _parse(path, data, found)
    if found.problems:
        raise ConfigError(found.problems)
    return config


def _parse(path: str, data: Mapping[Any, Any], found: Findings) -> OperatorConfig:
    root = Section(found, "", data, _TOP)
    cluster = root.name("cluster")
    members = _members(root)
    raw = root.data.get("zookeeper")
    zk_data = raw if isinstance(raw, Mapping) else {}
    if raw is not None and not isinstance(raw, Mapping):
        found.problem("zookeeper", f"expected a mapping, got {raw!r:.60}")
    # What only the nodes use (their secret, the operators' ids they grant access
    # to) is read here by neither parser: the file may be a copy of the node's section.
    mine = {k: v for k, v in zk_data.items() if k not in ("auth", "operators")}
    zookeeper = zookeeper_config(Section(found, "zookeeper", mine, ZOOKEEPER_KEYS))
    if zk_data.get("auth") is not None:
        auth = Section(found, "zookeeper.auth", zk_data["auth"], "scheme credential_file")
        if auth.has("credential_file"):
            found.problem(
                auth.key("credential_file"),
                "is the nodes' own secret, not an operator's: drop it and name your "
                "credential in operator.credential",
            )
        if zookeeper.insecure:
            found.problem("zookeeper.insecure", "true contradicts zookeeper.auth: drop one")
        # The operator's credential goes to the client in this scheme (zk/client.py).
        sasl = auth.choice("scheme", "digest", ("digest", "sasl")) == "sasl"
        zookeeper = replace(zookeeper, auth=ZkAuthConfig("sasl" if sasl else "digest", "", ""))
    op = root.section("operator", "credential")
    # Without auth the tree is open (zookeeper.insecure): nobody's credential is needed.
    credential = op.text("credential", "" if zookeeper.insecure else None)
    switchover = root.section("switchover", "timeout")
    return OperatorConfig(
        path=path,
        cluster=cluster,
        members=members,
        zookeeper=zookeeper,
        credential=_expand(credential, path) if credential else None,
        switchover=SwitchoverConfig(
            timeout=switchover.duration("timeout", SwitchoverConfig.timeout)
        ),
    )


def _members(root: Section) -> tuple[str, ...]:
    at = root.key("members")
    raw = root.data.get("members")
    example = "a list of the cluster's node names like [mail1, mail2]"
    if not isinstance(raw, list) or len(raw) < 2:
        root.found.problem(at, f"expected {example}, got {raw!r:.60}")
        return ()
    names: list[str] = []
    for i, name in enumerate(raw):
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            root.found.problem(f"{at}[{i}]", f"expected a node name, got {name!r:.60}")
        elif name in names:
            root.found.problem(f"{at}[{i}]", f"{name!r} is listed twice")
        else:
            names.append(name)
    return tuple(names)


def cluster_view(op: OperatorConfig) -> Config:
    """The cluster as failoverctl's ZooKeeper session needs it (zk/ reads a Config):
    its name, members in order, ZooKeeper and the switchover timeout. `node` is only
    the first member's name, not this machine: what needs a node's own config
    (fencing, the nodes' credential) refuses an operator config before it gets here."""
    first, *others = op.members
    return Config(
        path=op.path,
        cluster=op.cluster,
        node=NodeConfig(name=first, address="-"),
        peers=tuple(PeerConfig(name=n, address="-") for n in others),
        zookeeper=op.zookeeper,
        switchover=op.switchover,
    )
