"""systemd units as a resource: systemctl start, stop and is-active.

The units learn the cluster, node and epoch they run for through a runtime
drop-in written before each start (failoverd/resources/systemd_dropin.py).

A stop counts as done only when systemd shows every unit inactive with no main
process, and the main process it showed before the stop is gone. `systemctl
stop` returning is not enough: a unit that only stands for others (Debian's
postfix.service is `Type=oneshot`, `ExecStart=/bin/true`; the master runs in
postfix@-.service, `PartOf=postfix.service`) finishes its own stop job at once,
while the stop of the unit that runs the daemon is still under way. So the units
that are part of a configured unit (systemd's ConsistsOf=) are waited for too.
A demotion or fence-self that said "stopped" early would let the peer start
Postfix next to a master that still delivers.

A fence takes the fast path, `kill`: SIGKILL to every process of the units and of
the units that are part of them, then the same `systemctl stop` and the same
verification. The stop cancels a restart that `Restart=` may have queued for the
killed unit; `reset-failed` then clears the "failed" state the kill leaves (and
the start-rate counter), since a fenced node is not a failed one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from failoverd.config.model import SystemdResourceConfig
from failoverd.config.order import resource_name
from failoverd.observe import fastlog
from failoverd.process import run_command
from failoverd.resources import systemd_dropin
from failoverd.resources.base import ResourceError, command_error, failure, ms_since

log = fastlog.get_logger(__name__)  # no structlog in fence-self

# `systemctl is-active` exit codes that mean "definitely not running":
# 3 inactive/failed, 4 no such unit. Anything else (1: cannot talk to systemd) is "cannot tell".
_INACTIVE = (3, 4)
# ActiveState values of a unit none of whose processes runs any more.
_STOPPED_STATES = ("inactive", "failed")
STOP_POLL = 0.05  # seconds between looks at a unit that is still stopping


def unit_properties(
    systemctl: str, unit: str, names: Sequence[str], env: Mapping[str, str], timeout: float
) -> dict[str, str] | None:
    """`systemctl show -p A,B UNIT` as {name: value}; None when systemctl could not
    answer (no systemd running, a timeout). A property systemd prints once per item
    (ExecStart=, one line per command) comes back as lines joined by newlines."""
    outcome = run_command([systemctl, "show", "-p", ",".join(names), unit], env, timeout)
    if not outcome.ok:
        return None
    props: dict[str, str] = {}
    for line in outcome.output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in names:
            props[key] = f"{props[key]}\n{value}" if key in props else value
    return props


def _process_start(pid: int) -> str | None:
    """The start time of a live process (so a reused pid is not mistaken for it);
    None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _note_main(props: Mapping[str, str] | None, mains: dict[int, str]) -> None:
    """Add the unit's main process, if it has a live one, to {pid: start time}."""
    raw = props.get("MainPID", "") if props else ""
    start = _process_start(int(raw)) if raw.isdigit() and int(raw) > 0 else None
    if start is not None:
        mains[int(raw)] = start


class SystemdResource:
    """systemctl start/stop/is-active; the units get FAILOVERD_* through a runtime
    drop-in written before each start (failoverd.resources.systemd_dropin)."""

    def __init__(
        self,
        cfg: SystemdResourceConfig,
        systemctl: str = "systemctl",
        unit_dir: Path | None = None,
        key: str = "resource",
    ):
        self.cfg = cfg
        self.key = key
        self.timeout = cfg.timeout
        self.systemctl = systemctl
        self.unit_dir = unit_dir
        self.name = resource_name(cfg, key)
        self.after = cfg.after  # what it starts after (config/order.py)

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
            raise ResourceError(failure(self.key, "start", self.name, why)) from e
        outcome = run_command([self.systemctl, "daemon-reload"], env, self.timeout)
        if not outcome.ok:
            raise command_error(outcome, self.key, "start", self.name, step="daemon-reload")
        left = deadline - time.monotonic()
        outcome = run_command([self.systemctl, "start", *self.cfg.units], env, left)
        if not outcome.ok:
            raise command_error(outcome, self.key, "start", self.name)
        log.info("resource_started", resource=self.name, took_ms=ms_since(started))

    def stop(self, env: Mapping[str, str]) -> None:
        deadline = time.monotonic() + self.timeout
        units = list(reversed(self.cfg.units))
        # Before the stop: what has to be gone after it (see the module docstring).
        watched, mains = self._before_stop(units, env, deadline)
        self._stop(units, watched, mains, env, deadline, "stop")

    def kill(self, env: Mapping[str, str]) -> None:
        """The fast path of a fence (module docstring): SIGKILL, then the stop."""
        deadline = time.monotonic() + self.timeout
        units = list(reversed(self.cfg.units))
        watched, mains = self._before_stop(units, env, deadline)
        # Every unit watched, not only the configured ones: Debian's postfix.service
        # has no process of its own, its master runs in postfix@-.service. --kill-who:
        # systemd before 252 knows only that spelling; 252 renamed it --kill-whom and
        # still takes the old one (an unambiguous prefix).
        argv = [self.systemctl, "kill", "--signal=SIGKILL", "--kill-who=all", *watched]
        outcome = run_command(argv, env, max(0.0, deadline - time.monotonic()))
        if not outcome.ok:
            # Fails for a unit that is not loaded or has nothing left to kill: what
            # counts is what runs after the stop below, judged as a stop is judged.
            log.info("systemd_kill_failed", resource=self.name, error=outcome.describe())
        self._stop(units, watched, mains, env, deadline, "kill")
        # Only tidiness, after the verdict: a problem is logged, never raised.
        outcome = run_command(
            [self.systemctl, "reset-failed", *watched], env, max(0.2, deadline - time.monotonic())
        )
        if not outcome.ok:
            log.info("systemd_reset_failed_failed", resource=self.name, error=outcome.describe())

    def _stop(
        self,
        units: list[str],
        watched: list[str],
        mains: dict[int, str],
        env: Mapping[str, str],
        deadline: float,
        action: str,
    ) -> None:
        """`systemctl stop`, then wait until nothing of `watched` runs; `action`
        names the failure (stop or kill)."""
        left = max(0.0, deadline - time.monotonic())
        outcome = run_command([self.systemctl, "stop", *units], env, left)
        if outcome.timed_out:
            raise command_error(outcome, self.key, action, self.name)
        if outcome.ok:
            why = self._wait_stopped(watched, mains, env, deadline)
            if why:
                why = f"systemctl stop returned, but {why}"
                raise ResourceError(failure(self.key, action, self.name, why))
            self._remove_dropins()
            return
        # `stop` also fails for a unit that is not loaded at all. What counts is that
        # nothing is left running, so judge by what systemd shows rather than the exit code.
        if not self._still_running(watched, mains, env, deadline - time.monotonic()):
            error = outcome.describe()
            log.warning("systemd_stop_failed_but_inactive", resource=self.name, error=error)
            self._remove_dropins()
            return
        raise command_error(outcome, self.key, action, self.name)

    def _before_stop(
        self, units: list[str], env: Mapping[str, str], deadline: float
    ) -> tuple[list[str], dict[int, str]]:
        """The units to see stopped (the configured ones and the units that are part of
        them) and their main processes as {pid: start time}. What systemd cannot
        tell now is judged after the stop, by what it shows then."""
        watched = list(units)
        mains: dict[int, str] = {}
        for unit in units:
            props = self._show(unit, ("MainPID", "ConsistsOf"), env, deadline)
            _note_main(props, mains)
            for part in props.get("ConsistsOf", "").split() if props else []:
                if part not in watched:
                    watched.append(part)
                    _note_main(self._show(part, ("MainPID",), env, deadline), mains)
        return watched, mains

    def _show(
        self, unit: str, names: Sequence[str], env: Mapping[str, str], deadline: float
    ) -> dict[str, str] | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        return unit_properties(self.systemctl, unit, names, env, left)

    def _still_running(
        self, watched: list[str], mains: dict[int, str], env: Mapping[str, str], timeout: float
    ) -> str:
        """What still runs ("" when nothing does, by everything systemd shows)."""
        deadline = time.monotonic() + timeout
        for unit in watched:
            props = self._show(unit, ("ActiveState", "MainPID"), env, deadline)
            if props is None:
                return f"systemd could not be asked about {unit}"
            # No MainPID at all: not a service (a .mount, a .socket), so no main process.
            state, pid = props.get("ActiveState", "unknown"), props.get("MainPID", "0")
            if state not in _STOPPED_STATES or pid not in ("0", ""):
                return f"{unit} is {state} (main pid {pid})"
        for main_pid, start in mains.items():
            if _process_start(main_pid) == start:
                return f"its main process {main_pid} is still running"
        return ""

    def _wait_stopped(
        self, watched: list[str], mains: dict[int, str], env: Mapping[str, str], deadline: float
    ) -> str:
        """Look until nothing runs any more or the resource's timeout is up; what
        still runs then ("" when nothing does)."""
        while True:
            why = self._still_running(watched, mains, env, max(0.0, deadline - time.monotonic()))
            # The last look must have time to answer, or it would only say "could not ask".
            if not why or deadline - time.monotonic() < 2 * STOP_POLL:
                return why
            time.sleep(STOP_POLL)

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
