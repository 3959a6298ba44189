"""The active's resource status poll (failoverd/resources/watch.py) with fake resources."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from failoverd.resources.watch import ResourceWatch


class FakeResource:
    timeout = 1.0

    def __init__(self, name: str, running: bool | None):
        self.name, self.running = name, running
        self.asked = 0

    def start(self, env: Mapping[str, str]) -> None: ...

    def stop(self, env: Mapping[str, str]) -> None: ...

    def is_running(self, env: Mapping[str, str]) -> bool | None:
        self.asked += 1
        return self.running


def watcher(*resources: FakeResource) -> tuple[ResourceWatch, threading.Event]:
    lost = threading.Event()
    w = ResourceWatch(list(resources), lost.set, interval=0.01, confirm=0.01)
    w.start()
    return w, lost


def test_a_resource_definitely_stopped_is_reported_once_confirmed() -> None:
    vip, svc = FakeResource("vip", True), FakeResource("svc", False)
    w, lost = watcher(vip, svc)
    try:
        w.watch({"FAILOVERD_EPOCH": "3"})
        assert lost.wait(2.0)
        assert w.lost == "svc" and svc.asked >= 2  # asked again before reporting
    finally:
        w.stop()


def test_unknown_status_and_unwatched_resources_are_no_evidence() -> None:
    unknown = FakeResource("cmd without status", None)
    stopped = FakeResource("svc", False)
    w, lost = watcher(unknown)
    try:
        w.watch({})
        time.sleep(0.1)  # a window in which nothing may be reported
        assert not lost.is_set() and unknown.asked > 0
    finally:
        w.stop()
    w2, lost2 = watcher(stopped)
    try:
        time.sleep(0.1)  # not watched (standby): never asked
        assert stopped.asked == 0 and not lost2.is_set()
        w2.watch({})
        assert lost2.wait(2.0)
        w2.unwatch()  # demoting: the report is cleared
        assert w2.lost is None
    finally:
        w2.stop()
