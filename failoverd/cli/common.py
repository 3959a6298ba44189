"""What every failoverctl command shares: the config file it was given (a node's or
an operator's), who the operator is, and a ZooKeeper session whose failures become
the exit codes of exits.py (1 refused, 2 usage, config or auth, 3 unreachable).

The group itself (failoverctl.py) stores the --config path (None: not given) in
`ctx.obj` and the operator's --credential path in `ctx.meta["credential_path"]`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import structlog

from failoverd.cli.exits import ConfigProblem, Refused, Unreachable, access_refused
from failoverd.cli.identity import operator_name, read_operator_credential
from failoverd.config import Config, ConfigError, OperatorConfig
from failoverd.config.operator import cluster_view, load_failoverctl_config, user_config_path
from failoverd.zk.admin import AdminCoordinator
from failoverd.zk.errors import AccessRefused, CoordinationError

__all__ = [
    "CALL_TIMEOUT",
    "ConfigProblem",
    "Refused",
    "Unreachable",
    "command_config",
    "json_option",
    "log_to_stderr",
    "operator_identity",
    "zk_session",
]

CONNECT_TIMEOUT = 3.0
CALL_TIMEOUT = 3.0
DEFAULT_CONFIG = "/etc/failoverd/failoverd.yaml"
# What only a node's own config can do: fence-check runs its fencing section,
# fix-acl and restore write with the nodes' credential (ADMIN, the breadcrumb).
NEEDS_NODE_CONFIG = frozenset({"fence-check", "fix-acl", "restore"})


def config_path(given: str | None) -> str:
    """--config (or FAILOVERD_CONFIG) when given; else the user's own operator
    config when it exists; else the node's config."""
    if given is not None:
        return given
    mine = user_config_path()
    return mine if mine is not None and os.path.isfile(mine) else DEFAULT_CONFIG


def command_config(ctx: click.Context) -> Config:
    """The config file given to failoverctl, a node's or an operator's (config/
    operator.py); its problems exit 2, one per line."""
    path = config_path(ctx.obj)
    try:
        loaded = load_failoverctl_config(path)
    except ConfigError as e:
        hint = _unreadable_hint(e.problems, defaulted=ctx.obj is None)
        raise ConfigProblem("\n".join([*e.problems, *hint])) from None
    if isinstance(loaded, Config):
        return loaded
    command = ctx.info_name or ""
    if command in NEEDS_NODE_CONFIG:
        raise ConfigProblem(
            f"failoverctl: {command} needs a node's own config (its fencing, the nodes' "
            f"credential), and {path} is an operator config: run it as root on a node "
            f"with --config {DEFAULT_CONFIG}"
        )
    ctx.meta["operator_config"] = loaded
    return cluster_view(loaded)


def _unreadable_hint(problems: list[str], defaulted: bool) -> list[str]:
    """What a person who is not root does about a node config they cannot read, or
    about having none at all (no --config and no config of their own)."""
    denied = any("Permission denied" in p for p in problems)
    missing = defaulted and any("No such file or directory" in p for p in problems)
    if not denied and not missing:
        return []
    mine = user_config_path() or "~/.config/failoverd/failoverctl.yaml"
    return [
        f"failoverctl: as a non-root operator, write {mine} (an operator config: "
        "cluster, members, zookeeper and operator.credential) or pass --config FILE"
    ]


def operator_identity(ctx: click.Context) -> tuple[str | None, str]:
    """(operator credential or None, the name history records for this operator).
    --credential first, then an operator config's operator.credential; without
    either, the node's own zookeeper.auth is used."""
    path = ctx.meta.get("credential_path")
    source = f"--credential {path}"
    op = ctx.meta.get("operator_config")
    if path is None and isinstance(op, OperatorConfig) and op.credential is not None:
        path, source = op.credential, f"operator.credential {op.credential} ({op.path})"
    if path is None:
        return None, operator_name(None)
    try:
        credential = read_operator_credential(path)
    except ValueError as e:
        raise ConfigProblem(f"failoverctl: {e}") from None
    ctx.meta["credential_source"] = source
    return credential, operator_name(credential)


def _credential_source(config: Config, credential: str | None) -> str | None:
    ctx = click.get_current_context(silent=True)
    if credential is not None:
        return str(ctx.meta.get("credential_source", "--credential")) if ctx else "--credential"
    if config.zookeeper.auth is not None and config.zookeeper.auth.credential_file:
        return f"zookeeper.auth.credential_file {config.zookeeper.auth.credential_file}"
    return None


@contextmanager
def zk_session(config: Config, credential: str | None = None) -> Iterator[AdminCoordinator]:
    """Connected within CONNECT_TIMEOUT or Unreachable (exit 3); ZooKeeper refusing
    this identity is a config mistake (exit 2), any other ZooKeeper failure inside
    the block is Refused (exit 1); closed on the way out."""
    quiet_kazoo()
    coord = AdminCoordinator(config, credential=credential)
    try:
        try:
            coord.start(timeout=CONNECT_TIMEOUT)
        except AccessRefused:
            raise
        except CoordinationError as e:
            raise Unreachable(str(e)) from None
        yield coord
    except AccessRefused as e:
        who = _credential_source(config, credential)
        raise access_refused(e, config.zookeeper.hosts, config.path, who) from None
    except CoordinationError as e:
        raise Refused(str(e)) from None
    finally:
        coord.close()


def json_option(command: Any) -> Any:
    """`--json` for a read command: one JSON document on stdout, whose field names
    are a contract for scripts (the value arrives as `as_json`)."""
    return click.option(
        "--json", "as_json", is_flag=True, help="print JSON (stable field names) for scripts"
    )(command)


def log_to_stderr() -> None:
    """failoverd's own warnings met while reading (e.g. lock_unreadable) go to stderr,
    one line each: stdout carries only the answer, which scripts parse (`--json`).
    structlog's default would print them to stdout."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def quiet_kazoo() -> None:
    """kazoo logs every failed connection attempt; the CLI says it once, in one line."""
    kazoo_log = logging.getLogger("kazoo")
    kazoo_log.addHandler(logging.NullHandler())
    kazoo_log.propagate = False
