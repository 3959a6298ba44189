"""Does the active still run what it started?

An active whose resources were stopped underneath it (a fence-self from an older
fence, Postfix crashed, an operator's `systemctl stop`) would otherwise stay
"active" with nothing running, and the standby would never take over. So while
the node is active, this thread asks each resource's status (`Resource.is_running`)
every STATUS_INTERVAL seconds and reports one that is *definitely* stopped
(False; None, "cannot tell", is no evidence) and still stopped CONFIRM seconds
later, so a service that restarts itself is not a demotion.

Off the lease-critical path: the main loop never waits for a status command (each
is bounded by its resource's timeout, on this thread); it only reads `lost`.
The interval keeps the idle cost small: one status command per resource every
5 s costs the daemon itself well under 0.1 % of a core (the command's own CPU
is the operator's choice of status command).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

import structlog

from failoverd.resources.base import Resource

log = structlog.get_logger(__name__)

STATUS_INTERVAL = 5.0
CONFIRM = 1.0


class ResourceWatch(threading.Thread):
    def __init__(
        self,
        resources: Sequence[Resource],
        on_lost: Callable[[], None],
        interval: float = STATUS_INTERVAL,
        confirm: float = CONFIRM,
    ):
        super().__init__(name="resource-watch", daemon=True)
        self.resources = tuple(resources)
        self.on_lost = on_lost
        self.interval = interval
        self.confirm = confirm
        self._lock = threading.Lock()
        self._generation = 0
        self._env: Mapping[str, str] | None = None
        self._lost: str | None = None
        self._wake = threading.Event()
        self._stopped = threading.Event()

    @property
    def lost(self) -> str | None:
        """The name of a resource found stopped while watched, else None."""
        with self._lock:
            return self._lost

    def watch(self, env: Mapping[str, str]) -> None:
        """Promoted: from now on every resource should be running."""
        with self._lock:
            self._generation += 1
            self._env, self._lost = dict(env), None

    def unwatch(self) -> None:
        """Demoting: the resources are about to stop on purpose."""
        with self._lock:
            self._generation += 1
            self._env, self._lost = None, None

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            with self._lock:
                generation, env = self._generation, self._env
            if env is None:
                continue
            for res in self.resources:
                if not self._stopped_now(res, env):
                    continue
                if self._stopped.wait(self.confirm):
                    return  # shutting down
                if self._stopped_now(res, env):
                    self._report(generation, res.name)
                    break

    def _stopped_now(self, res: Resource, env: Mapping[str, str]) -> bool:
        try:
            return res.is_running(env) is False
        except Exception as e:  # noqa: BLE001 - a broken status check is no evidence
            log.warning("resource_status_failed", resource=res.name, error=str(e))
            return False

    def _report(self, generation: int, name: str) -> None:
        with self._lock:
            if generation != self._generation:
                return  # demoted (or re-promoted) meanwhile: the answer is stale
            self._lost = name
        log.error("resource_stopped_underneath", resource=name)
        self.on_lost()
