"""Every transition is total, with real daemons on a real ZooKeeper.

Whatever a step of a takeover or a demotion raises, and however long a resource
start hangs, the node ends in a defined state: lock released, what it started
stopped, backed off, alerted; and a node that abandoned a start is not clean.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import PY, REPO, Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer


@pytest.fixture
def make_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[Cluster] = []

    def factory(**kw: Any) -> Cluster:
        c = Cluster(tmp_path / f"c{len(made)}", **kw)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.stop()
        _kill_services_of(c)
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())


def _kill_services_of(c: Cluster) -> None:
    """A service a failed test left behind (e.g. one a helper started late, whose
    pid file the toy service's stop no longer names), found by its directory."""
    needle = str(c.service_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            pass


def events(c: Cluster, node: str, name: str) -> list[dict[str, Any]]:
    return [e for e in c.nodes[node].events() if e.get("event") == name]


def fence_calls(c: Cluster) -> list[dict[str, Any]]:
    path = c.root / "fence-calls.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def member(c: Cluster, node: str) -> dict[str, Any]:
    return next(m for m in c.status()["members"] if m["node"] == node)


def start_mail1_first(c: Cluster) -> None:
    """mail1 active, then mail2 standing by (on a loaded machine a simultaneous
    start may let mail2 win before mail1 has registered)."""
    c.start("mail1")
    assert c.wait_active(timeout=20) == "mail1"
    c.start("mail2")
    wait_for(lambda: member(c, "mail2")["role"] == "standby", 15, "mail2 standing by")


def test_promotion_that_raises_ends_in_standby_with_the_lock_released_and_retries(
    zk: ZooKeeperServer, make_cluster: Any
) -> None:
    """The standby's state dir becomes unusable (the fence lock path is a directory,
    as after a botched restore; root ignores chmod), so taking the fence lock raises
    OSError mid-promotion. The node must not sit in `promoting` holding the lock."""
    c = make_cluster(zk_hosts=zk.address)
    start_mail1_first(c)
    lock = c.state_dirs["mail2"] / "fence.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    c.nodes["mail1"].kill()

    wait_for(lambda: events(c, "mail2", "transition_failed"), 20, "mail2 to report the failure")
    failed = events(c, "mail2", "transition_failed")[0]
    assert failed["level"] == "critical" and failed["role"] == "promoting", failed

    def settled() -> bool:
        st = c.status()
        m2 = next(m for m in st["members"] if m["node"] == "mail2")
        return st["lease_holder"] is None and m2["role"] == "standby"

    wait_for(settled, 15, "mail2 back in standby with the lock released")
    assert not [i for i in c.serving() if i[0] == "mail2"]

    # Once the state dir is usable again, the standby takes over.
    lock.rmdir()
    assert c.wait_active(timeout=30, other_than="mail1") == "mail2"
    wait_for(lambda: [i for i in c.serving() if i[0] == "mail2"], 10, "mail2's service up")
    c.assert_never_two_serving()


# A start that hands its service to a detached helper (setsid) and then hangs: the
# helper brings the service up only after `DELAY` s, later than the start's timeout
# (2 s), when the daemon has already given up on the start. Only for the node named
# by the flag file; every other start runs the toy service directly.
# With "clear-env", the helper drops its environment (as Postfix's master does), so
# only the service's status shows that it came up.
HANGING_START = """
flag="$1/hang-start-$FAILOVERD_NODE"; shift
if [ -e "$flag" ]; then
    wrap=""; [ "$(cat "$flag")" = clear-env ] && wrap="env -i PATH=$PATH"
    setsid $wrap sh -c 'sleep 3; exec "$@"' sh "$@" </dev/null >/dev/null 2>&1 &
    exec sleep 60
fi
exec "$@"
"""


def with_hanging_start(c: Cluster) -> None:
    script = c.root / "hanging-start.sh"
    script.write_text(HANGING_START)
    for i, name in enumerate(c.names):
        cfg = c.config_dict(name, i)
        res = cfg["resources"][0]
        res["start"] = ["sh", str(script), str(c.root), *res["start"]]
        res["timeout"] = "2s"
        c.nodes[name].config_path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("helper", ["keeps-env", "clear-env"])
def test_abandoned_start_is_never_clean_so_the_successor_fences_and_services_never_overlap(
    zk: ZooKeeperServer, make_cluster: Any, helper: str
) -> None:
    """The start times out (its process group is killed) but the
    helper it setsid'ed lives on and brings the service up later. Before the fix
    mail1 stopped 'nothing', marked the breadcrumb clean, mail2 took over without
    fencing, and then mail1's service came up next to mail2's."""
    c = make_cluster(zk_hosts=zk.address)
    with_hanging_start(c)
    (c.root / "hang-start-mail1").write_text(helper)
    c.start("mail1")
    wait_for(lambda: events(c, "mail1", "demoted"), 20, "mail1 to give up its start")
    c.start("mail2")
    demoted = events(c, "mail1", "demoted")[0]
    assert demoted["clean"] is False and demoted["code"] == "start_failed", demoted
    (c.root / "hang-start-mail1").unlink()
    # mail1 holds its fence lock until its abandoned start is confirmed gone: mail2's
    # fence fails until then, and whoever is first after that becomes active.
    active = c.wait_active(timeout=40)
    wait_for(lambda: [i for i in c.serving() if i[0] == active], 10, f"{active}'s service up")
    calls = fence_calls(c)
    assert calls and calls[0]["by"] == "mail2" and calls[0]["target"] == "mail1", calls
    if active == "mail2":
        assert calls[-1]["rc"] == 0, calls
    time.sleep(3.0)  # the helper's delay: the window in which mail1's service would come up
    c.assert_never_two_serving()
    assert {i[0] for i in c.serving() if i[2] >= time.time() - 0.5} == {active}


def test_a_restarted_daemon_is_still_unclean_after_an_abandoned_start(
    zk: ZooKeeperServer, make_cluster: Any
) -> None:
    """A crash or a watchdog restart must not wash an abandoned start clean: the
    record in the state dir keeps the node out of contention until it is gone."""
    c = make_cluster(zk_hosts=zk.address)
    with_hanging_start(c)
    (c.root / "hang-start-mail1").write_text("keeps-env")
    c.start("mail1")
    wait_for(lambda: events(c, "mail1", "demoted"), 20, "mail1 to give up its start")
    c.nodes["mail1"].kill()  # within the operation's 2 s quiet period
    assert not events(c, "mail1", "abandoned_operations_gone")
    (c.root / "hang-start-mail1").unlink()
    c.nodes["mail1"].start()
    wait_for(lambda: events(c, "mail1", "abandoned_operations_restored"), 15, "the record read")
    assert c.wait_active(timeout=30) == "mail1"
    names = [e["event"] for e in c.nodes["mail1"].events()]
    restarted = names.index("abandoned_operations_restored")
    gone = names.index("abandoned_operations_gone", restarted)
    assert gone < names.index("promoted", restarted), "contended while still unclean"


def test_active_whose_service_is_stopped_underneath_demotes_and_the_peer_takes_over(
    zk: ZooKeeperServer, make_cluster: Any
) -> None:
    """With nothing running (here no health check would notice), the
    active used to stay "active" forever; its resource status now says stopped."""
    c = make_cluster(zk_hosts=zk.address)
    start_mail1_first(c)
    wait_for(lambda: [i for i in c.serving() if i[0] == "mail1"], 10, "mail1's service up")
    toy = [
        PY,
        "-m",
        "chaos.services.loopback_smtp",
        "stop",
        "--name",
        "mail1",
        "--dir",
        str(c.service_dir),
    ]
    subprocess.run(toy, cwd=REPO, check=True)  # as a fence-self from an older fence would
    wait_for(lambda: events(c, "mail1", "demoted"), 20, "mail1 to notice and demote")
    demoted = events(c, "mail1", "demoted")[0]
    assert demoted["code"] == "resource_lost" and demoted["clean"] is True, demoted
    assert c.wait_active(timeout=20, other_than="mail1") == "mail2"
    assert fence_calls(c) == []  # mail1 stopped everything and said so
    wait_for(lambda: [i for i in c.serving() if i[0] == "mail2"], 10, "mail2's service up")
    c.assert_never_two_serving()
