"""failoverctl's exit codes, the one contract every command keeps, so a script or a
monitoring check can act on the number alone:

    0  OK           done; for `status`: one healthy active with a standby that could take over
    1  REFUSED      understood but not done (refused, timed out, failed), or the cluster
                    is degraded (status), or a warning
    2  USAGE        usage or config error: a typo on the command line, a config file that
                    does not parse or cannot be read, and auth mistakes (ZooKeeper refused
                    this identity), each said in plain words: which setting, what to do
    3  UNREACHABLE  ZooKeeper cannot be reached, so the cluster's state is unknown (the
                    Nagios convention for "unknown"); for `status --local`: neither can
                    the node's own endpoint

click's own usage errors (unknown command or option, bad value) exit 2 as well.
"""

from __future__ import annotations

from typing import Any

import click

from failoverd.cli.terminal import printable
from failoverd.zk.errors import AccessRefused

OK = 0
REFUSED = 1
USAGE = 2
UNREACHABLE = 3


class Refused(click.ClickException):
    """The operation was refused or failed: exit 1 with the reason. Reasons quote
    node names and errors read from ZooKeeper, so they are printed escaped."""

    exit_code = REFUSED

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {printable(self.format_message())}", err=True)


class ConfigProblem(click.ClickException):
    """A config or auth mistake: exit 2, each line of the message as it is (config
    problems already read ``FILE: key: message``)."""

    exit_code = USAGE

    def show(self, file: Any = None) -> None:
        for line in self.message.splitlines():
            click.echo(printable(line), err=True)


class Unreachable(click.ClickException):
    """ZooKeeper cannot be reached, so the cluster's state is unknown: exit 3, one line."""

    exit_code = UNREACHABLE

    def show(self, file: Any = None) -> None:
        click.echo(f"failoverctl: UNKNOWN: {printable(self.message)}", err=True)


def access_refused(
    e: AccessRefused, hosts: str, config_path: str, who: str | None
) -> ConfigProblem:
    """ZooKeeper refused this identity: what was refused and what to change.
    `who` says where the credential came from ("--credential FILE", "operator.credential
    FILE", "zookeeper.auth.credential_file FILE"), None when there was none."""
    if e.kind == "sasl_required":
        what = (
            f"ZooKeeper at {hosts} requires a SASL login, and failoverctl offered none "
            f"({config_path} has no zookeeper.auth"
            + (f"; {who} was offered as digest" if who else "")
            + ")"
        )
        fix = (
            "set zookeeper.auth.scheme: sasl in the config and give a credential the "
            "servers' JAAS file knows (operator.credential in an operator config, or "
            "--credential FILE)"
        )
    elif e.kind == "login_refused":
        what = f"ZooKeeper at {hosts} refused the login with {who or 'no credential'} ({e})"
        fix = "check the user and password in it against the servers' JAAS file"
    else:
        what = f"ZooKeeper refused access ({e}) to {who or 'a client without a credential'}"
        fix = (
            "an operator's credential must be among the nodes' zookeeper.operators (add "
            "the output of 'failoverctl digest USER' there and run 'failoverctl fix-acl' "
            "as root on a node); commands that change the tree itself (fix-acl, restore) "
            "need the nodes' own config, as root"
            if who is None or not who.startswith("zookeeper.auth")
            else "the nodes' credential does not match the one the cluster's znodes were "
            "created with"
        )
    return ConfigProblem(f"failoverctl: {what}: {fix}")
