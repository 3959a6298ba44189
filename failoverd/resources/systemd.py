"""systemd units as a resource: systemctl start, stop and is-active.

The units learn the cluster, node and epoch they run for through a runtime
drop-in written before each start (failoverd/resources/systemd_dropin.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from failoverd.config.model import SystemdResourceConfig
from failoverd.observe import fastlog
from failoverd.process import run_command
from failoverd.resources import systemd_dropin
from failoverd.resources.base import ResourceError, command_error, ms_since

log = fastlog.get_logger(__name__)  # no structlog in fence-self

# `systemctl is-active` exit codes that mean "definitely not running":
# 3 inactive/failed, 4 no such unit. Anything else (1: cannot talk to systemd) is "cannot tell".
_INACTIVE = (3, 4)


class SystemdResource:
    """systemctl start/stop/is-active; the units get FAILOVERD_* through a runtime
    drop-in written before each start (failoverd.resources.systemd_dropin)."""

    def __init__(
        self,
        cfg: SystemdResourceConfig,
        systemctl: str = "systemctl",
        unit_dir: Path | None = None,
    ):
        self.cfg = cfg
        self.timeout = cfg.timeout
        self.systemctl = systemctl
        self.unit_dir = unit_dir
        self.name = "systemd " + " ".join(cfg.units)

    def _unit_dir(self) -> Path:
        return self.unit_dir if self.unit_dir is not None else systemd_dropin.RUNTIME_UNIT_DIR

    def start(self, env: Mapping[str, str]) -> None:
        started = time.monotonic()
        deadline = started + self.timeout
        try:
            systemd_dropin.write_dropins(self._unit_dir(), self.cfg.units, env)
        except (OSError, ValueError) as e:
            # A unit started without its epoch could not tell a stale active from
            # the current one: not starting is the safe failure.
            why = f"cannot write the FAILOVERD_* drop-in: {e}"
            raise ResourceError(f"{self.name} start: {why}") from e
        outcome = run_command([self.systemctl, "daemon-reload"], env, self.timeout)
        if not outcome.ok:
            raise command_error(outcome, f"{self.name} start (daemon-reload for the drop-in)")
        left = deadline - time.monotonic()
        outcome = run_command([self.systemctl, "start", *self.cfg.units], env, left)
        if not outcome.ok:
            raise command_error(outcome, f"{self.name} start")
        log.info("resource_started", resource=self.name, took_ms=ms_since(started))

    def stop(self, env: Mapping[str, str]) -> None:
        deadline = time.monotonic() + self.timeout
        units = list(reversed(self.cfg.units))
        outcome = run_command([self.systemctl, "stop", *units], env, self.timeout)
        if outcome.ok:
            self._remove_dropins()
            return
        if outcome.timed_out:
            raise command_error(outcome, f"{self.name} stop")
        # `stop` also fails for a unit that is not loaded at all. What counts is that
        # nothing is left running, so judge by is-active rather than by the exit code.
        states = [self._active(u, env, deadline - time.monotonic()) for u in units]
        if all(s is False for s in states):
            error = outcome.describe()
            log.warning("systemd_stop_failed_but_inactive", resource=self.name, error=error)
            self._remove_dropins()
            return
        raise command_error(outcome, f"{self.name} stop")

    def _remove_dropins(self) -> None:
        # Only tidiness (the next start rewrites them): a problem is logged, not raised.
        problems = systemd_dropin.remove_dropins(self._unit_dir(), self.cfg.units)
        if problems:
            log.warning("systemd_dropin_not_removed", resource=self.name, problems=problems)

    def is_running(self, env: Mapping[str, str]) -> bool | None:
        deadline = time.monotonic() + self.timeout
        states = [self._active(u, env, deadline - time.monotonic()) for u in self.cfg.units]
        if all(s is True for s in states):
            return True
        if any(s is False for s in states):
            return False
        return None

    def _active(self, unit: str, env: Mapping[str, str], timeout: float) -> bool | None:
        outcome = run_command([self.systemctl, "is-active", "--quiet", unit], env, timeout)
        if outcome.returncode == 0:
            return True
        if outcome.returncode in _INACTIVE:
            return False
        return None
