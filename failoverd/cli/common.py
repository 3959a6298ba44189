"""What every failoverctl command shares: its exit codes as exceptions, the config
file it was given, who the operator is, and a ZooKeeper session whose failures
become those exit codes (1 refused, 2 usage or config, 3 unreachable).

The group itself (failoverctl.py) stores the config path in `ctx.obj` and the
operator's --credential path in `ctx.meta["credential_path"]`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import structlog

from failoverd.cli.identity import operator_name, read_operator_credential
from failoverd.cli.terminal import printable
from failoverd.config import Config, ConfigError, load_config
from failoverd.zk.admin import AdminCoordinator
from failoverd.zk.errors import CoordinationError

CONNECT_TIMEOUT = 3.0
CALL_TIMEOUT = 3.0


class Refused(click.ClickException):
    """The operation was refused or failed: exit 1 with the reason. Reasons quote
    node names and errors read from ZooKeeper, so they are printed escaped."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {printable(self.format_message())}", err=True)


class Unreachable(click.ClickException):
    """ZooKeeper cannot be reached, so the cluster's state is unknown: exit 3, one line."""

    exit_code = 3

    def show(self, file: Any = None) -> None:
        click.echo(f"failoverctl: UNKNOWN: {printable(self.message)}", err=True)


def command_config(ctx: click.Context) -> Config:
    """The node's config file given to failoverctl; its problems exit 2, one per line."""
    try:
        return load_config(ctx.obj)
    except ConfigError as e:
        for line in e.problems:
            click.echo(line, err=True)
        ctx.exit(2)
        raise AssertionError("unreachable") from None


def operator_identity(ctx: click.Context) -> tuple[str | None, str]:
    """(operator credential or None, the name history records for this operator)."""
    path = ctx.meta.get("credential_path")
    if path is None:
        return None, operator_name(None)
    try:
        credential = read_operator_credential(path)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    return credential, operator_name(credential)


@contextmanager
def zk_session(config: Config, credential: str | None = None) -> Iterator[AdminCoordinator]:
    """Connected within CONNECT_TIMEOUT or Unreachable (exit 3); a ZooKeeper failure
    inside the block is Refused (exit 1); closed on the way out."""
    quiet_kazoo()
    coord = AdminCoordinator(config, credential=credential)
    try:
        coord.start(timeout=CONNECT_TIMEOUT)
    except CoordinationError as e:
        raise Unreachable(str(e)) from None
    try:
        yield coord
    except CoordinationError as e:
        raise Refused(str(e)) from None
    finally:
        coord.close()


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
