"""The daemon logs `resource_starting` immediately before each resource's start command.

The chaos lab's trigger for the "just before a resource start" window
(chaos/faults/triggers.py) fires on that line, so it must be in the log *before* the
start command runs, once per resource, with the resource's name and the epoch.
Proved causally: each start command copies the daemon's log at the moment it
runs, and that copy must already hold the line for its own resource.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import Cluster, json_lines
from tests.support.zookeeper import ZooKeeperServer


@pytest.fixture
def cluster(tmp_path: Path, zk: ZooKeeperServer) -> Iterator[Cluster]:
    c = Cluster(tmp_path, zk_hosts=zk.address)
    yield c
    c.stop()


def _snapshot_resource(c: Cluster, tag: str) -> dict[str, Any]:
    log = c.nodes["mail1"].log_path
    snap = c.root / f"log-at-start-{tag}.jsonl"
    return {
        "type": "command",
        "start": ["sh", "-c", f'cp "{log}" "{snap}"', f"snap-{tag}"],
        "stop": ["true"],
        "timeout": "5s",
    }


def test_resource_starting_is_logged_before_each_start_command_runs(cluster: Cluster) -> None:
    c = cluster
    cfg = c.config_dict("mail1", 0)
    cfg["resources"] = [_snapshot_resource(c, "a"), *cfg["resources"], _snapshot_resource(c, "b")]
    c.nodes["mail1"].config_path.write_text(json.dumps(cfg))
    c.start("mail1")
    assert c.wait_active(timeout=20) == "mail1"

    events = c.nodes["mail1"].events()
    promoted = next(e for e in events if e.get("event") == "promoted")
    starting = [e for e in events if e.get("event") == "resource_starting"]
    started = [e["resource"] for e in events if e.get("event") == "resource_started"]
    # One line per resource, in start order, naming it, with the promotion's epoch.
    assert [e["resource"] for e in starting] == started and len(started) == 3
    assert {e["epoch"] for e in starting} == {promoted["epoch"]}
    for tag, index in (("a", 0), ("b", 2)):
        seen = json_lines(c.root / f"log-at-start-{tag}.jsonl")
        before = [e for e in seen if e.get("event") == "resource_starting"]
        # The copy made by this start command already ends with its own announcement
        # (and not yet its resource_started).
        assert before and before[-1]["resource"] == starting[index]["resource"]
        assert len(before) == index + 1
        assert sum(e.get("event") == "resource_started" for e in seen) == index
