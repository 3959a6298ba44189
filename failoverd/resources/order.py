"""Running resource operations in their order (config/order.py), in parallel where
it allows: the daemon's starts, and every stop (stop_all in base.py: the demotion,
the start-up cleanup, fence-self, the sweep of abandoned work).

The runner takes the operation as a callable, so it does not care which one runs
(start, a graceful stop, a kill): it only decides *when*. Each operation runs on
its own thread once everything it waits for is done; the caller's thread only
waits. Without `after:` anywhere the order is the list order, one at a time, and
the callers keep running that on their own thread exactly as before.

A set of resources the order cannot be planned for (an `after:` naming nothing in
the set, or a cycle; only possible when the record of what an older file started
meets the current file, since the file itself is checked) runs in the list order,
one at a time: the order failoverd always had, never a guess.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from failoverd.config.order import Order, plan, serial, unknown
from failoverd.observe import fastlog

log = fastlog.get_logger(__name__)  # no structlog in fence-self

# How often the waiting thread looks at deadlines when nothing finishes meanwhile.
POLL = 0.05


def order_of(resources: Sequence[Any]) -> Order:
    """The start order of built resources (by `name` and `after`). The list order for
    a set that cannot be planned (the module docstring says when), logged."""
    names = [str(getattr(r, "name", "")) for r in resources]
    afters = [_after(r) for r in resources]
    order = plan(names, afters)
    if order.serial:
        return order
    problem = ""
    if missing := unknown(names, afters):
        problem = f"after: names no resource here: {', '.join(sorted(set(missing)))}"
    elif (cycle := order.cycle()) is not None:
        problem = "after: makes a cycle: " + " -> ".join(names[i] for i in cycle)
    if problem:
        log.warning("resource_order_ignored", reason=problem, using="the list order")
        return serial(len(resources))
    return order


def _after(res: Any) -> tuple[str, ...] | None:
    after = getattr(res, "after", None)
    return after if isinstance(after, tuple) else None  # a test's stand-in has none


@dataclass
class Outcome:
    """What a run did, by list index."""

    done: list[int] = field(default_factory=list)  # finished without an error, in that order
    failed: dict[int, BaseException] = field(default_factory=dict)  # in the order seen
    hung: dict[int, Future[None]] = field(default_factory=dict)  # past its deadline, running
    never: list[int] = field(default_factory=list)  # not run: stopped early, or waiting on one

    @property
    def ok(self) -> bool:
        return not self.failed and not self.hung and not self.never


def run(
    order: Order,
    action: Callable[[int], None],
    *,
    keep_going: bool,
    deadlines: Sequence[float] | None = None,
) -> Outcome:
    """Run `action(i)` for every resource i, each once all it waits for are done.

    `keep_going` (stops): a failure does not hold anything back; a resource waiting on
    a failed one runs all the same (as much as possible is stopped). Without it
    (starts): after the first failure nothing new begins; what runs is waited for.
    `deadlines`: seconds each action may take before it is given up on (left running
    on its thread, reported in `hung`, counted as finished for `keep_going`); None:
    each action bounds itself (every resource command has its timeout)."""
    n = len(order.needs)
    out = Outcome()
    wake = threading.Condition()
    running: dict[int, tuple[Future[None], float]] = {}
    settled: set[int] = set()  # what a waiting resource may go on after
    pending = list(range(n))
    halted = False

    def launch(i: int) -> None:
        future: Future[None] = Future()
        future.set_running_or_notify_cancel()

        def body() -> None:
            try:
                action(i)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
                future.set_exception(e)
            else:
                future.set_result(None)
            with wake:
                wake.notify_all()

        limit = float("inf") if deadlines is None else deadlines[i]
        running[i] = (future, time.monotonic() + limit)
        threading.Thread(target=body, name=f"resource-{i}", daemon=True).start()

    with wake:
        while True:
            now = time.monotonic()
            for i, (future, deadline) in list(running.items()):
                if future.done():
                    del running[i]
                    error = future.exception()
                    if error is None:
                        out.done.append(i)
                        settled.add(i)
                    else:
                        out.failed[i] = error
                        halted = halted or not keep_going
                        if keep_going:
                            settled.add(i)
                elif now >= deadline:
                    del running[i]
                    out.hung[i] = future
                    halted = halted or not keep_going
                    if keep_going:
                        settled.add(i)
            if not halted:
                for i in [i for i in pending if order.needs[i] <= settled]:
                    pending.remove(i)
                    launch(i)
            if not running:
                break
            soonest = min(deadline for _, deadline in running.values())
            wake.wait(timeout=max(0.0, min(POLL, soonest - time.monotonic())))
    out.never = pending
    return out
