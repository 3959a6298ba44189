"""A failed resource start whose command line holds secrets, against a real daemon:
nothing that leaves the node (GET /status, /metrics, the member znode, history,
a hook's environment and argv) carries the command line or its output; each names
the failure by its config key path (`resources[0].start`) and exit status. The
command's output is for the operator, in the local log only."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer, free_port

PY = sys.executable
SECRET = "hunter2"
# A start that fails after echoing its arguments, as a careless script would.
LEAKY_START = [
    PY,
    "-c",
    "import sys; print(' '.join(sys.argv[1:])); sys.exit(3)",
    f"--password={SECRET}",
    f"PGPASSWORD={SECRET}",
    f"-p{SECRET}",
]
RECORD = """
import json, os, sys
env = {k: v for k, v in os.environ.items() if k.startswith("FAILOVERD_")}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"env": env, "argv": sys.argv}) + "\\n")
"""
WHERE = "resources[0].start"


@pytest.fixture
def cluster(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    hooks = [{"on": ["demoted"], "argv": [PY, "-c", RECORD, str(tmp_path / "hooks.jsonl")]}]
    c = Cluster(tmp_path / "c", zk.address, extra={"hooks": hooks})
    port = free_port()
    c.http_port = port  # type: ignore[attr-defined]

    def leaky(cfg: dict[str, Any]) -> None:
        cfg["metrics"] = {"listen": f"127.0.0.1:{port}"}
        cfg["resources"][0]["start"] = LEAKY_START

    c.edit_config("mail1", leaky)
    yield c
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.dump_logs())


def get(c: Cluster, path: str) -> str:
    url = f"http://127.0.0.1:{c.http_port}{path}"  # type: ignore[attr-defined]
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode())
    except (urllib.error.URLError, OSError):
        return ""


def zookeeper_view(c: Cluster) -> tuple[str, list[str]]:
    """mail1's member znode as stored, and every history entry as stored."""
    from failoverd.config import load_config
    from failoverd.zk.coordinator import Coordinator

    coord = Coordinator(load_config(str(c.nodes["mail2"].config_path)))
    coord.start(timeout=5)
    try:
        member, _ = coord.client.get(f"{coord.members_path}/mail1")
        history = [
            coord.client.get(f"{coord.history_path}/{child}")[0].decode(errors="replace")
            for child in coord.client.get_children(coord.history_path)
        ]
        return member.decode(errors="replace"), history
    finally:
        coord.close()


def test_a_failed_start_is_described_by_its_key_path_never_its_command_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start("mail1")
    hooks_file = tmp_path / "hooks.jsonl"

    def demoted_hook() -> list[dict[str, Any]] | None:
        lines = hooks_file.read_text().splitlines() if hooks_file.exists() else []
        return [json.loads(line) for line in lines] or None

    hooks = wait_for(demoted_hook, 30, "the demoted hook after the failed start")
    status = wait_for(
        lambda: "did not start" in (s := get(cluster, "/status")) and s, 10, "/status"
    )
    metrics = get(cluster, "/metrics")
    member, history = zookeeper_view(cluster)
    demoted = [h for h in history if "did not start" in h]
    assert demoted, history

    wrong = []
    for what, text in [
        ("/status", status),
        ("hook env and argv", json.dumps(hooks)),
        ("history", "\n".join(demoted)),
        ("member znode", member),
        ("/metrics", metrics),
    ]:
        if SECRET in text:
            wrong.append(f"{what} leaks the secret")
        if WHERE not in text:
            wrong.append(f"{what} does not name {WHERE}")
    assert not wrong, f"{wrong}\n/status: {status}\nmember: {member}\nhistory: {demoted}"
    reason = json.loads(status)["reason"]
    assert "exited with 3" in reason, reason
    assert PY not in reason and "-c" not in reason, f"the command line is in {reason!r}"

    # The operator still learns what the command said: in the local log, only.
    lines = [
        e for e in cluster.nodes["mail1"].events() if e.get("event") == "resource_command_failed"
    ]
    assert lines, "no resource_command_failed line in the local log"
    assert lines[0]["resource"] == "resources[0]" and lines[0]["exit_code"] == 3, lines[0]
    assert "PGPASSWORD=" in lines[0]["output"], lines[0]
