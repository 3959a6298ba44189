"""A resource run by the operator's own commands: start, stop and, optionally, status
and kill (the fast stop of a fence).

Idempotence is the commands' contract (stopping a stopped service exits 0); each
call is bounded by the resource's timeout (failoverd/process.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from failoverd.config.model import CommandResourceConfig
from failoverd.config.order import resource_name
from failoverd.observe import fastlog
from failoverd.process import run_command
from failoverd.resources.base import command_error, ms_since

log = fastlog.get_logger(__name__)  # no structlog in fence-self


class CommandResource:
    """Named by its place in the config ("command resources[2]"), not by what it
    runs: a command line may hold a password, even in the program's name position
    (`env PGPASSWORD=x psql`, `sh -c "mysql -px"`), and the name is published."""

    def __init__(self, cfg: CommandResourceConfig, name: str | None = None, key: str = "resource"):
        self.cfg = cfg
        self.timeout = cfg.timeout
        self.key = key
        self.name = name or resource_name(cfg, key)
        self.after = cfg.after  # what it starts after (config/order.py)

    def start(self, env: Mapping[str, str]) -> None:
        started = time.monotonic()
        self._run(self.cfg.start, env, "start")
        log.info("resource_started", resource=self.name, took_ms=ms_since(started))

    def stop(self, env: Mapping[str, str]) -> None:
        # Idempotence is the stop command's contract: stopping a stopped service exits 0.
        self._run(self.cfg.stop, env, "stop")

    def kill(self, env: Mapping[str, str]) -> None:
        """The fast path of a fence: the `kill` command, under the stop's contract
        (idempotent, exits 0 only once nothing runs); without one, the stop."""
        if self.cfg.kill:
            self._run(self.cfg.kill, env, "kill")
        else:
            self.stop(env)

    def is_running(self, env: Mapping[str, str]) -> bool | None:
        if not self.cfg.status:
            return None
        outcome = run_command(self.cfg.status, env, self.timeout)
        if outcome.returncode is None:
            return None
        return outcome.ok

    def _run(self, argv: Sequence[str], env: Mapping[str, str], what: str) -> None:
        outcome = run_command(argv, env, self.timeout)
        if not outcome.ok:
            raise command_error(outcome, self.key, what, "command")
