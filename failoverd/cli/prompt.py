"""Asking the operator before a command changes who serves.

On a terminal (stdin a tty) a command that changes the cluster asks first, unless
`--yes`; off a terminal (a script, a pipe, cron) it does not ask, since nobody is
there to answer, and the command line itself is the decision.
"""

from __future__ import annotations

import sys

import click

from failoverd.cli.common import Refused
from failoverd.cli.terminal import printable


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def ask(question: str, yes: bool) -> None:
    """Go on, or exit 1 (refused: understood, not done) when the operator says no."""
    if yes or not stdin_is_terminal():
        return
    if not click.confirm(printable(question), default=False):
        raise Refused("not confirmed: nothing was changed")
