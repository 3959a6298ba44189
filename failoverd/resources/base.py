"""What every resource is (DESIGN.md §4, §9), and starting or stopping them as a set.

Resources are started in configured order on promotion and stopped in reverse on
demotion. Every call is bounded by the resource's ``timeout``; a resource never
leaves a child process running past its deadline, except the daemon a start
command deliberately launches. The kinds: command.py, systemd.py, vip.py, ocf.py;
build.py makes them from the configuration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from failoverd.observe import fastlog
from failoverd.process import CommandOutcome

log = fastlog.get_logger(__name__)  # no structlog in fence-self


class ResourceError(Exception):
    """A resource could not be started or stopped; the message says what and why."""


class ResourceTimeout(ResourceError):
    """A resource command ran past its timeout and was killed: whatever it started
    outside its process group may live on (failoverd/resources/abandoned.py)."""


class Resource(Protocol):
    name: str
    timeout: float  # the bound of one start/stop call (the daemon budgets with it)

    def start(self, env: Mapping[str, str]) -> None: ...

    def stop(self, env: Mapping[str, str]) -> None: ...

    def is_running(self, env: Mapping[str, str]) -> bool | None: ...


def ms_since(started: float) -> int:
    """Milliseconds since a time.monotonic() reading, for the took_ms of a log line."""
    return round((time.monotonic() - started) * 1000)


def command_error(outcome: CommandOutcome, what: str) -> ResourceError:
    """The error for a resource command that failed: a ResourceTimeout when it was
    killed at its deadline, since then something it started may live on."""
    if outcome.timed_out:
        return ResourceTimeout(f"{what}: {outcome.describe()}")
    return ResourceError(f"{what}: {outcome.describe()}")


def prepare_all(resources: Sequence[Resource]) -> None:
    """Work a resource can do ahead of its first start (the daemon, once at start)."""
    for res in resources:
        prepare = getattr(res, "prepare", None)
        if prepare is not None:
            prepare()


def stop_all(resources: Sequence[Resource], env: Mapping[str, str]) -> list[str]:
    """Stop in reverse start order; keep going past failures so that as much as
    possible is stopped. Returns one '<name>: <reason>' per failure (empty: all stopped)."""
    failures: list[str] = []
    for res in reversed(resources):
        started = time.monotonic()
        try:
            res.stop(env)
        except Exception as e:  # one broken resource must not keep the others running
            failures.append(f"{res.name}: {e}")
            log.error("resource_stop_failed", resource=res.name, error=str(e))
            continue
        log.info("resource_stopped", resource=res.name, took_ms=ms_since(started))
    return failures
