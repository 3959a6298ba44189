"""What every resource is, and starting or stopping them as a set.

Resources are started in configured order on promotion (or as `after:` allows,
resources/order.py) and stopped in reverse on demotion. A stop that is a fence takes
each resource's fast path instead (`kill`, see `stop_all`). Every call is bounded by
the resource's ``timeout``; a resource never leaves a child process running past
its deadline, except the daemon a start command deliberately launches. The kinds:
command.py, systemd.py, vip.py, ocf.py; build.py makes them from the configuration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from failoverd.observe import fastlog
from failoverd.observe.redact import redact, redact_argv
from failoverd.process import CommandOutcome
from failoverd.resources.order import order_of, run

log = fastlog.get_logger(__name__)  # no structlog in fence-self

TAIL_LOGGED = 400  # characters of a failed command's output in the local log


class ResourceError(Exception):
    """A resource could not be started or stopped; the message says what and why."""


class ResourceTimeout(ResourceError):
    """A resource command ran past its timeout and was killed: whatever it started
    outside its process group may live on (failoverd/resources/abandoned.py)."""


class Resource(Protocol):
    name: str  # safe to publish: no command line, no parameter value
    key: str  # where the config file defines it: "resources[2]"
    timeout: float  # the bound of one start/stop call (the daemon budgets with it)

    def start(self, env: Mapping[str, str]) -> None: ...

    def stop(self, env: Mapping[str, str]) -> None: ...

    # Optional, like `prepare`: `kill(env)`, the fast path of a stop that is a fence
    # (stop_all below). The same contract as `stop` (idempotent; returns only once
    # nothing of the resource runs, verified as the stop verifies it; raises
    # otherwise), reached without waiting for a graceful shutdown. A resource
    # without it is stopped.

    def is_running(self, env: Mapping[str, str]) -> bool | None: ...


def ms_since(started: float) -> int:
    """Milliseconds since a time.monotonic() reading, for the took_ms of a log line."""
    return round((time.monotonic() - started) * 1000)


# Why a failure is described by where the config defines it, not by what ran: the
# text travels. It becomes the demotion's reason, and with it the member znode and
# history (every operator reads them), GET /status (whoever reaches the port), the
# hooks' FAILOVERD_REASON (often sent to a pager service), and what fence-self tells
# the peer. A command line may hold a password (`mysql -pX`, `PGPASSWORD=X ...`),
# an OCF parameter value too, and a script may echo its arguments into its output.
# So the published description is the key path, the resource's kind and safe name,
# and how it ended; the command line and its output go to this node's log only.


def failure(key: str, action: str, label: str, why: str) -> str:
    """'resources[2].start (systemd postfix.service): exited with 1'."""
    return f"{key}.{action} ({label}): {why}"


def command_error(
    outcome: CommandOutcome, key: str, action: str, label: str, step: str = ""
) -> ResourceError:
    """The error for a resource command that failed, fit to publish (see above); what
    the command was and said is logged here, locally. A ResourceTimeout when it was
    killed at its deadline, since then something it started may live on. `step`: which
    of the action's commands failed, when it runs several (`daemon-reload`)."""
    log_command_failure(outcome, key, action)
    why = f"{step} {outcome.summary()}" if step else outcome.summary()
    cls = ResourceTimeout if outcome.timed_out else ResourceError
    return cls(failure(key, action, label, why))


def log_command_failure(outcome: CommandOutcome, key: str, action: str) -> None:
    """For the operator at this node: the command line and the tail of its output
    (redacted all the same: logs get shipped), never into an error's text."""
    log.info(
        "resource_command_failed",
        resource=key,
        action=action,
        exit_code=outcome.returncode,
        timed_out=outcome.timed_out,
        error=redact(outcome.error),
        argv=redact_argv(outcome.argv),
        output=redact(outcome.output.strip()[-TAIL_LOGGED:]),
    )


def prepare_all(resources: Sequence[Resource]) -> None:
    """Work a resource can do ahead of its first start (the daemon, once at start)."""
    for res in resources:
        prepare = getattr(res, "prepare", None)
        if prepare is not None:
            prepare()


def stop_all(
    resources: Sequence[Resource], env: Mapping[str, str], fast: bool = False
) -> list[str]:
    """Stop in reverse start order (`resources` is in start order): without `after:`
    the last first, one at a time; with it, each resource once everything that
    waits for it has stopped, in parallel where that allows (resources/order.py).
    Keep going past failures so that as much as possible is stopped. Returns one
    '<name>: <reason>' per failure (empty: all stopped).

    `fast`: the stop is a fence (fence-self; a demotion of a node that lost its
    lease, node/decision.py stop_is_fence), so each resource takes its fast path,
    `kill`. A fenced node has lost its right to serve and a peer is waiting to
    start the same services: a graceful shutdown buys nothing then, and nothing
    acknowledged is lost by a kill (mail is acknowledged once it is on the store).
    The order stays the same: the store goes last, after every service using it
    is gone."""
    failures: dict[int, str] = {}
    how = "kill" if fast else "stop"

    def stop(i: int) -> None:
        res, started = resources[i], time.monotonic()
        kill = getattr(res, "kill", None) if fast else None
        try:
            if kill is not None:
                kill(env)
            else:
                res.stop(env)
        except Exception as e:  # one broken resource must not keep the others running
            failures[i] = f"{res.name}: {e}"
            log.error("resource_stop_failed", resource=res.name, error=str(e), how=how)
            return
        log.info("resource_stopped", resource=res.name, took_ms=ms_since(started), how=how)

    plan = order_of(resources)
    if plan.serial:
        for i in reversed(range(len(resources))):
            stop(i)
    else:
        outcome = run(plan.backwards(), stop, keep_going=True)
        for i, e in outcome.failed.items():  # what stop() lets through (BaseException)
            failures[i] = f"{resources[i].name}: {type(e).__name__}: {e}"
    # In the order stop_all always reported them: the last listed first.
    return [failures[i] for i in sorted(failures, reverse=True)]
