"""A real daemon starts resources with `after:` in parallel where the order allows,
and stops them in reverse dependency order: each command records when it ran."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import Cluster
from tests.support.zookeeper import ZooKeeperServer


@pytest.fixture
def cluster(tmp_path: Path, zk: ZooKeeperServer) -> Iterator[Cluster]:
    c = Cluster(tmp_path, zk_hosts=zk.address)
    yield c
    c.stop()


def _timed(c: Cluster, name: str, after: list[str] | None) -> dict[str, Any]:
    """A resource whose start and stop take 0.5 s and append 'NAME start|stop T0 T1'."""
    out = c.root / "ran.txt"

    def op(what: str) -> list[str]:
        script = (
            'a=$(date +%s.%N); sleep 0.5; b=$(date +%s.%N); echo "$0 $1 $a $b" >> "$2"'
        )
        return ["sh", "-c", script, name, what, str(out)]

    res: dict[str, Any] = {
        "type": "command", "name": name, "start": op("start"), "stop": op("stop"),
        "timeout": "5s",
    }  # fmt: skip
    if after is not None:
        res["after"] = after
    return res


def _spans(c: Cluster, what: str) -> dict[str, tuple[float, float]]:
    lines = (c.root / "ran.txt").read_text().split("\n")
    found = [line.split() for line in lines if line]
    return {n: (float(a), float(b)) for n, w, a, b in found if w == what}


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_the_daemon_starts_and_stops_resources_in_their_after_order(cluster: Cluster) -> None:
    c = cluster
    cfg = c.config_dict("mail1", 0)
    cfg["resources"] = [
        _timed(c, "store", None),
        _timed(c, "vip", []),
        _timed(c, "postfix", ["store", "vip"]),
        _timed(c, "dovecot", ["store", "vip"]),
        *cfg["resources"],  # the toy service, after dovecot (no after:: the one before it)
    ]
    c.nodes["mail1"].config_path.write_text(json.dumps(cfg))
    c.start("mail1")
    assert c.wait_active(timeout=20) == "mail1"
    s = _spans(c, "start")
    assert _overlap(s["store"], s["vip"]) and _overlap(s["postfix"], s["dovecot"])
    assert min(s["postfix"][0], s["dovecot"][0]) >= max(s["store"][1], s["vip"][1])
    events = c.nodes["mail1"].events()
    starting = [e["resource"] for e in events if e.get("event") == "resource_starting"]
    assert sorted(starting[:2]) == ["store", "vip"] and len(starting) == 5
    promoted = next(e for e in events if e.get("event") == "promoted")
    assert promoted["took_ms"] < 2500  # in a row, the four would take 2 s alone

    c.nodes["mail1"].stop()
    s = _spans(c, "stop")
    assert _overlap(s["postfix"], s["dovecot"]) and _overlap(s["store"], s["vip"])
    assert min(s["store"][0], s["vip"][0]) >= max(s["postfix"][1], s["dovecot"][1])
    # The last five: the demotion's (the start-up cleanup stopped them all once too).
    stopped = [e for e in c.nodes["mail1"].events() if e.get("event") == "resource_stopped"]
    assert all(isinstance(e.get("took_ms"), int) for e in stopped[-5:])
    assert {e["resource"] for e in stopped[-5:]} == {*s, "command resources[4]"}
