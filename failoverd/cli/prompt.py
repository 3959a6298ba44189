"""Asking the operator before a command changes who serves.

On a terminal a command that changes the cluster asks first, unless `--yes`. Off
a terminal (a script, a pipe, cron, a test harness) it does not ask, since nobody
is there to answer, and the command line itself is the decision.

"On a terminal" means stdin *and* stdout: a program that captures failoverctl's
output (the chaos lab, a wrapper script) but leaves stdin on the operator's
terminal would otherwise send the question into its pipe, where nobody reads it,
and wait for an answer nobody knows to give.
"""

from __future__ import annotations

import sys

import click

from failoverd.cli.common import Refused
from failoverd.cli.terminal import printable


def on_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def ask(question: str, yes: bool) -> None:
    """Go on, or exit 1 (refused: understood, not done) when the operator says no."""
    if yes or not on_terminal():
        return
    if not click.confirm(printable(question), default=False):
        raise Refused("not confirmed: nothing was changed")
