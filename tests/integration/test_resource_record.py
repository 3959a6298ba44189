"""What a node started, not what its file says now: fence-self and the start-up
cleanup stop the resources the daemon recorded before it started them, besides the
ones the (possibly edited) config file names.

Every config change but `log:` needs a restart; between an operator's edit and
that restart the file and the running daemon disagree. These tests edit mail1's
resource (a new name and port for its toy service, as a new unit name or VIP would
be) while its old service runs, then fence it or restart it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from failoverd.checks.report import check_report
from failoverd.config import load_config
from failoverd.resources.build import build_resources
from tests.integration.cluster import REPO, Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer, free_port

PY = sys.executable


def rename_service(c: Cluster, node: str, new_name: str) -> None:
    """The operator's edit: `node`'s resource now runs a service called `new_name`
    on another port (the daemon sees it at its next start)."""
    port = str(free_port())

    def change(cfg: dict[str, Any]) -> None:
        res = cfg["resources"][0]
        for key in ("start", "stop", "status"):
            argv = res[key]
            argv[argv.index("--name") + 1] = new_name
            argv[argv.index("--port") + 1] = port

    c.edit_config(node, change)


def stop_service(c: Cluster, name: str) -> None:
    """Never leave a renamed toy service behind (Cluster.stop knows the node names only)."""
    toy = [PY, "-m", "chaos.services.loopback_smtp", "stop", "--name", name]
    subprocess.run([*toy, "--dir", str(c.service_dir)], cwd=REPO, check=False)


def last_event(c: Cluster, name: str) -> str | None:
    """The last thing service `name` recorded: 'up', 'down' or None."""
    events = sorted(
        (e for e in c.service_events() if e["node"] == name),
        key=lambda e: float(e["t"]),  # type: ignore[arg-type]
    )
    return str(events[-1]["event"]) if events else None


def test_fence_self_stops_the_service_the_frozen_daemon_started_not_only_the_edited_file(
    cluster: Cluster,
) -> None:
    c = cluster
    c.start("mail1")
    assert c.wait_active(timeout=20) == "mail1"
    c.start("mail2")
    wait_for(lambda: last_event(c, "mail1") == "up", 10, "mail1's service up")
    wait_for(
        lambda: any(m["node"] == "mail2" and m["role"] == "standby" for m in c.status()["members"]),
        20,
        "mail2 standing by",
    )
    rename_service(c, "mail1", "mail1-new")  # edited, not restarted
    c.nodes["mail1"].signal(signal.SIGSTOP)  # frozen, its service keeps serving
    try:
        assert c.wait_active(timeout=30, other_than="mail1") == "mail2"
        wait_for(lambda: last_event(c, "mail2") == "up", 10, "mail2's service up")
        calls = [json.loads(x) for x in (c.root / "fence-calls.jsonl").read_text().splitlines()]
        assert [(x["target"], x["rc"]) for x in calls] == [("mail1", 0)]
        assert last_event(c, "mail1") == "down", (
            "fence-self stopped the edited file's service and left the one mail1's "
            f"daemon started running: {c.serving()}"
        )
        assert last_event(c, "mail1-new") is None  # never started by anyone
        c.assert_never_two_serving()
    finally:
        c.nodes["mail1"].signal(signal.SIGCONT)


def test_start_up_cleanup_after_a_crash_stops_what_the_last_run_started(
    cluster: Cluster,
) -> None:
    c = cluster
    c.start("mail1")  # alone: nobody fences it, its own start-up cleanup must stop it
    assert c.wait_active(timeout=20) == "mail1"
    wait_for(lambda: last_event(c, "mail1") == "up", 10, "mail1's service up")
    rename_service(c, "mail1", "mail1-new")
    c.nodes["mail1"].kill()  # SIGKILL: the service keeps running
    c.nodes["mail1"].start()  # systemd restarts it, with the edited file
    try:
        restarted_and_cleaned_up(c)
    finally:
        c.nodes["mail1"].stop()
        stop_service(c, "mail1-new")


def restarted_and_cleaned_up(c: Cluster) -> None:
    wait_for(
        lambda: last_event(c, "mail1") == "down",
        15,
        "the restarted daemon's start-up cleanup to stop the service its last run started",
    )
    # From then on it serves the edited file's service, and only that one.
    assert c.wait_active(timeout=30) == "mail1"
    wait_for(lambda: last_event(c, "mail1-new") == "up", 10, "the edited service up")
    c.assert_never_two_serving()
    from failoverd.resources.started import RECORD_FILE

    record = json.loads((c.state_dirs["mail1"] / RECORD_FILE).read_text())
    assert [r["start"][r["start"].index("--name") + 1] for r in record["resources"]] == [
        "mail1-new"
    ]


# ---------------------------------------------------------------------------
# fence-self and --check against the record (no daemon)
# ---------------------------------------------------------------------------


def fence_self(c: Cluster, epoch: int) -> subprocess.CompletedProcess[str]:
    cfg = str(c.nodes["mail1"].config_path)
    return subprocess.run(
        [PY, "-m", "failoverd.main", "-c", cfg, "fence-self", "--epoch", str(epoch)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def start_mail1_service(c: Cluster) -> None:
    config = load_config(str(c.nodes["mail1"].config_path))
    env = {"FAILOVERD_CLUSTER": c.cluster, "FAILOVERD_NODE": "mail1", "FAILOVERD_EPOCH": "3"}
    for res in build_resources(config.resources):
        res.start(env)


def test_fence_self_with_a_corrupt_record_fails_so_the_fencer_falls_through(
    tmp_path: Path,
) -> None:
    from failoverd.resources.started import RECORD_FILE

    c = Cluster(tmp_path / "c", "127.0.0.1:1")
    try:
        start_mail1_service(c)
        (c.state_dirs["mail1"] / RECORD_FILE).write_bytes(b'{"v": 1, "resources": [{"ty')
        res = fence_self(c, 3)
        assert res.returncode == 1, res.stdout + res.stderr
        assert "resources record" in res.stdout.splitlines()[-1], res.stdout
        # What it could stop, it stopped (the peer's power fence follows).
        wait_for(lambda: last_event(c, "mail1") == "down", 5, "the configured service stopped")
    finally:
        c.stop()


def test_fence_self_stops_the_recorded_and_the_configured_and_clears_the_record(
    tmp_path: Path,
) -> None:
    c = Cluster(tmp_path / "c", "127.0.0.1:1")
    try:
        from failoverd.resources.started import RECORD_FILE, StartedRecord

        config = load_config(str(c.nodes["mail1"].config_path))
        start_mail1_service(c)
        StartedRecord(config.node.state_dir).write(config.resources, epoch=3)
        rename_service(c, "mail1", "mail1-new")
        dry = subprocess.run(
            [PY, "-m", "failoverd.main", "-c", str(c.nodes["mail1"].config_path)]
            + ["fence-self", "--dry-run"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert dry.returncode == 0, dry.stdout + dry.stderr
        would = [x for x in dry.stdout.splitlines() if x.startswith("would stop command")]
        assert len(would) == 2, dry.stdout  # the recorded service and the edited one
        res = fence_self(c, 3)
        assert res.returncode == 0, res.stdout + res.stderr
        assert last_event(c, "mail1") == "down"
        assert not (c.state_dirs["mail1"] / RECORD_FILE).exists()
    finally:
        c.stop()


def test_check_notes_that_the_files_resources_differ_from_what_this_node_started(
    tmp_path: Path,
) -> None:
    from failoverd.resources.started import StartedRecord

    c = Cluster(tmp_path / "c", "127.0.0.1:1")
    path = str(c.nodes["mail1"].config_path)
    config = load_config(path)
    StartedRecord(config.node.state_dir).write(config.resources, epoch=3)
    code, text = check_report(path, machine=False)
    assert code == 0 and "differ" not in text, text
    rename_service(c, "mail1", "mail1-new")
    code, text = check_report(path, machine=False)
    assert code == 0, text
    assert "note: resources: differ from what this node started" in text, text


def test_sighup_warns_when_the_files_resources_differ_from_the_running_ones(
    zk: ZooKeeperServer, cluster: Cluster
) -> None:
    c = cluster
    c.start("mail1")
    assert c.wait_active(timeout=20) == "mail1"
    rename_service(c, "mail1", "mail1-new")
    c.nodes["mail1"].signal(signal.SIGHUP)
    warned = wait_for(
        lambda: [
            e
            for e in c.nodes["mail1"].events()
            if e.get("event") == "resources_differ_from_running"
        ],
        10,
        "the resources_differ_from_running warning",
    )
    assert warned[0]["level"] == "warning"
    assert [" --name mail1-new " in x for x in warned[0]["file_only"]] == [True]
    assert [" --name mail1 " in x for x in warned[0]["running_only"]] == [True]
    time.sleep(0.2)
    assert c.active() == "mail1"


def test_an_unreadable_record_keeps_the_restarted_daemon_out_of_contention_until_repaired(
    cluster: Cluster,
) -> None:
    from failoverd.resources.started import RECORD_FILE

    c = cluster
    record = c.state_dirs["mail1"] / RECORD_FILE
    record.write_bytes(b"\x00torn")
    c.start("mail1")
    wait_for(
        lambda: [
            e
            for e in c.nodes["mail1"].events()
            if e.get("event") == "decided"
            and str(e.get("reason")).startswith("not contending: resources record unreadable")
        ],
        20,
        "mail1 to decide not to contend, for its unreadable record",
    )
    assert [e for e in c.nodes["mail1"].events() if e.get("event") == "resources_record_unreadable"]
    time.sleep(1.0)
    assert c.status()["lease_holder"] is None, "a node that cannot tell what runs contended"
    record.unlink()  # the operator stopped what it named by hand
    assert c.wait_active(timeout=30) == "mail1"
