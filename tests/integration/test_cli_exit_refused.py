"""Exit 1, "understood but not done, or the cluster is degraded", from each
failoverctl command that can refuse, on a real ZooKeeper. (`history` and `digest`
have nothing to refuse: they exit 0, 2 or 3.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, wait_for
from tests.support.ctl import args_for, backup_text, ctl, node_yaml, write


def run(c: Cluster, command: str, tmp: Path, via: str = "mail2") -> tuple[int, str]:
    out = ctl("-c", str(c.nodes[via].config_path), *args_for(command, tmp))
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout + out.stderr


def test_with_no_daemon_running_status_switchover_and_backup_refuse_with_exit_1(
    cluster: Cluster, tmp_path: Path
) -> None:
    code, out = run(cluster, "status", tmp_path)
    assert code == 1 and "no node holds the lease" in out, out
    code, out = run(cluster, "status --json", tmp_path)
    assert code == 1 and json.loads(out.split("\n}")[0] + "\n}")["verdict"].startswith("degraded")
    code, out = run(cluster, "switchover", tmp_path)
    assert code == 1 and "no active node to switch over from" in out, out
    code, out = run(cluster, "backup", tmp_path)
    assert code == 1 and "does not exist: nothing to back up" in out, out


def test_with_daemons_running_failover_and_restore_refuse_with_exit_1(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start("mail1")
    wait_for(lambda: cluster.active(via="mail1"), 20, "mail1 active")
    code, out = run(cluster, "failover", tmp_path)  # --to mail2: but mail2 is stopped
    assert code == 1 and "mail2 is not connected to ZooKeeper" in out, out
    write(tmp_path / "restore.json", backup_text(cluster.cluster))
    code, out = run(cluster, "restore", tmp_path, via="mail1")
    assert code == 1 and "refused" in out.lower(), out
    on = ctl("-c", str(cluster.nodes["mail1"].config_path), "maintenance", "on")
    assert on.returncode == 0, on.stderr
    code, out = run(cluster, "switchover", tmp_path)
    assert code == 1 and "maintenance mode is on" in out, out


def test_fix_acl_refuses_a_config_without_auth_with_exit_1(tmp_path: Path) -> None:
    config = write(tmp_path / "failoverd.yaml", node_yaml("mail", "127.0.0.1:1", None))
    out = ctl("-c", str(config), "fix-acl")
    assert out.returncode == 1, out.stderr
    assert "zookeeper.auth is not set, so there is no ACL to apply" in out.stderr


def test_fence_check_with_no_working_method_is_exit_1(tmp_path: Path) -> None:
    missing = f"[{tmp_path}/no-such-fencer]"
    text = node_yaml("mail", "127.0.0.1:1", None).replace("[/bin/true]", missing)
    out = ctl("-c", str(write(tmp_path / "failoverd.yaml", text)), "fence-check", "mail2")
    assert out.returncode == 1, (out.stdout, out.stderr)


@pytest.fixture
def endpoint() -> Iterator[tuple[str, dict[str, object]]]:
    """A stand-in for a node's /status endpoint on loopback, serving `doc`."""
    doc: dict[str, object] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", doc
    server.shutdown()
    server.server_close()


VIEW = {
    "node": "mail1", "cluster": "mail", "role": "active", "epoch": 7, "healthy": True,
    "eligible": False, "why": "it is the active node", "maintenance": False, "reason": "",
    "version": "1.0", "priority": 0, "lease_holder": "mail1", "lease_valid": True,
    "lease_remaining": 1.5, "loop_alive": True,
}  # fmt: skip


@pytest.mark.parametrize(
    "change, sentence",
    [
        ({"healthy": False}, "it fails its health checks"),
        ({"lease_valid": False, "lease_remaining": 0}, "its local lease has run out"),
        ({"loop_alive": False}, "its main loop is stalled"),
    ],
)
def test_status_local_of_a_node_in_trouble_is_exit_1(
    endpoint: tuple[str, dict[str, object]], change: dict[str, object], sentence: str
) -> None:
    url, doc = endpoint
    doc.update(VIEW, **change)
    out = ctl("status", "--local", "--url", url)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "local view of mail1 (cluster mail), ZooKeeper not consulted" in out.stdout
    assert sentence in out.stdout
    doc.update(VIEW)
    out = ctl("status", "--local", "--url", url)
    assert out.returncode == 0, (out.stdout, out.stderr)


def test_status_local_of_something_else_on_the_port_is_exit_3(
    endpoint: tuple[str, dict[str, object]],
) -> None:
    url, doc = endpoint
    doc.update({"hello": "world"})
    out = ctl("status", "--local", "--url", url)
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "did not answer with failoverd's /status document" in out.stderr
