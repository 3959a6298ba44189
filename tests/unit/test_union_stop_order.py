"""The union of the record and the file (fence-self, the demotion, the start-up
cleanup) when the record names a resource the file does not: nothing in the file
points at that one by `after:`, so a plan by `after:` would stop it at once,
alongside the services that may run on it. Such a union is stopped one at a time,
the last listed first (failoverd/resources/started.py, `leftovers`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from failoverd.config.model import CommandResourceConfig, ResourceConfig
from failoverd.resources import base
from failoverd.resources.build import build_resources
from failoverd.resources.command import CommandResource
from failoverd.resources.started import StartedRecord, leftovers


def cmd(tag: str, **kw: Any) -> CommandResourceConfig:
    return CommandResourceConfig(start=("true", tag), stop=("true", tag), **kw)


def stop_events(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    recorded: list[ResourceConfig],
    configured: list[ResourceConfig],
) -> list[str]:
    """Stop the union (fast, as a fence does) and return when each stop began and ended;
    postfix takes a while to go, so anything stopped alongside it begins before it ends."""
    record = StartedRecord(tmp_path / "state")
    record.write(recorded, epoch=3)
    built = build_resources(configured)
    union = leftovers(record, configured, built)
    events: list[str] = []
    lock = threading.Lock()

    def fake_stop(self: CommandResource, env: object) -> None:
        with lock:
            events.append(f"begin {self.cfg.stop[1]}")
        time.sleep(0.2 if self.cfg.stop[1] == "postfix" else 0.0)
        with lock:
            events.append(f"end {self.cfg.stop[1]}")

    monkeypatch.setattr(CommandResource, "stop", fake_stop)
    monkeypatch.setattr(CommandResource, "kill", fake_stop)
    assert base.stop_all(union, {}, fast=True) == []
    return events


def test_an_old_record_store_stops_after_the_service_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What ran, recorded by a daemon from before name:/after: the store (mounted with
    # the old options), then postfix on it. The file now: the store's mount options
    # edited (another resource), postfix after it.
    events = stop_events(
        tmp_path,
        monkeypatch,
        recorded=[cmd("mount-old"), cmd("postfix")],
        configured=[
            cmd("mount-new", name="store"),
            cmd("postfix", name="postfix", after=("store",)),
        ],
    )
    # The old store (what is actually mounted) must not begin before postfix ended.
    assert events.index("begin mount-old") > events.index("end postfix"), events
    assert events.index("begin mount-new") > events.index("end postfix"), events


def test_a_renamed_and_edited_store_stops_after_the_service_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One edit renamed the store (store -> mailstore) and changed its mount: postfix
    # now waits for `mailstore`, and nothing waits for the recorded `store`.
    events = stop_events(
        tmp_path,
        monkeypatch,
        recorded=[cmd("mount-old", name="store"), cmd("postfix", name="postfix", after=("store",))],
        configured=[
            cmd("mount-new", name="mailstore"),
            cmd("postfix", name="postfix", after=("mailstore",)),
        ],
    )
    assert events.index("begin mount-old") > events.index("end postfix"), events


def test_the_serial_union_keeps_the_daemons_own_order(tmp_path: Path) -> None:
    # Stopping serially must not change the order the daemon starts its resources by.
    configured = [cmd("mount-new", name="store"), cmd("postfix", name="postfix", after=("store",))]
    built = build_resources(configured)
    record = StartedRecord(tmp_path / "state")
    record.write([cmd("mount-old"), cmd("postfix")], epoch=3)
    union = leftovers(record, configured, built)
    assert [getattr(r, "after", None) for r in union] == [None, None, None]
    assert [r.after for r in built] == [None, ("store",)]  # type: ignore[attr-defined]


def test_a_union_of_the_same_resources_keeps_its_parallel_plan(tmp_path: Path) -> None:
    # Only an edit of how-settings (a timeout): every recorded one is in the file.
    configured = [
        cmd("mount", name="store"),
        cmd("postfix", name="postfix", after=("store",), timeout=10.0),
    ]
    built = build_resources(configured)
    record = StartedRecord(tmp_path / "state")
    record.write([cmd("mount", name="store"), cmd("postfix", name="postfix", after=("store",))], 3)
    union = leftovers(record, configured, built)
    assert union == built
