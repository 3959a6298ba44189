"""A fence is not a graceful stop, with real daemons on a real ZooKeeper: the
command resource's `kill` runs when its node is fenced (fence-self, run by the
peer's fencer), its `stop` when the node hands over in a switchover."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import Cluster, wait_for
from tests.integration.test_transitions import events, fence_calls, start_mail1_first
from tests.support.zookeeper import ZooKeeperServer


@pytest.fixture
def cluster(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "c", zk.address)
    yield c
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.dump_logs())


def journaled(c: Cluster, journal: Path) -> None:
    """Each node's stop and kill write their name into `journal`, then run the toy
    service's own stop (so either really stops it)."""

    def wrap(name: str, how: str, argv: list[str]) -> list[str]:
        return ["sh", "-c", f'echo "{name} {how}" >> {journal} && exec "$@"', "sh", *argv]

    for name in c.names:

        def change(cfg: dict[str, Any], name: str = name) -> None:
            (res,) = cfg["resources"]
            stop = res["stop"]
            res["stop"] = wrap(name, "stop", stop)
            res["kill"] = wrap(name, "kill", stop)

        c.edit_config(name, change)


def entries(journal: Path) -> list[str]:
    return journal.read_text().splitlines() if journal.exists() else []


def test_a_switchover_stops_the_old_active_and_a_fence_kills_it(cluster: Cluster) -> None:
    c, journal = cluster, cluster.root / "stops"
    journaled(c, journal)
    start_mail1_first(c)
    wait_for(lambda: [i for i in c.serving() if i[0] == "mail1"], 10, "mail1's service up")
    before = len(entries(journal))  # the start-up cleanup stops what may be left

    out = c.ctl("switchover", "--to", "mail2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert c.wait_active(timeout=20, other_than="mail1") == "mail2"
    # A switchover is graceful: the old active's stop, never its kill.
    assert entries(journal)[before:] == ["mail1 stop"]
    (demoted,) = events(c, "mail1", "demoted")
    assert (demoted["code"], demoted["stop"]) == ("switchover", "graceful")
    wait_for(lambda: [i for i in c.serving() if i[0] == "mail2"], 10, "mail2's service up")

    # mail2's daemon dies with its service still running: mail1 fences it.
    before = len(entries(journal))
    c.nodes["mail2"].kill()
    assert c.wait_active(timeout=30, other_than="mail2") == "mail1"
    assert [f["target"] for f in fence_calls(c) if f["rc"] == 0] == ["mail2"]
    # fence-self takes the fast path: the kill, never the graceful stop.
    assert entries(journal)[before:] == ["mail2 kill"]
    c.assert_never_two_serving()
