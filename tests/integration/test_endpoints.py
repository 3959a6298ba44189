"""HTTP role endpoints against real daemons: /active on exactly one
node, flipping after a failover that silent HTTP clients cannot slow down."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from failoverd.config import load_config
from failoverd.zk.coordinator import Coordinator
from tests.integration.cluster import Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer, free_port


@pytest.fixture
def cluster(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "c", zk.address)
    c.http_ports = {}  # type: ignore[attr-defined]
    for name in c.names:
        port = c.http_ports[name] = free_port()  # type: ignore[attr-defined]

        def listen(cfg: dict[str, Any], port: int = port) -> None:
            cfg["metrics"] = {"listen": f"127.0.0.1:{port}"}

        c.edit_config(name, listen)
    yield c
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.dump_logs())


def get(c: Cluster, node: str, path: str) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{c.http_ports[node]}{path}"  # type: ignore[attr-defined]
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""  # not listening (yet, or any more)


def codes(c: Cluster, path: str) -> dict[str, int]:
    return {n: get(c, n, path)[0] for n in c.names}


def test_active_is_200_on_exactly_one_node_and_flips_after_a_failover(cluster: Cluster) -> None:
    cluster.start()
    assert cluster.wait_active(timeout=20) == "mail1"
    wait_for(lambda: codes(cluster, "/active") == {"mail1": 200, "mail2": 503}, 10, "/active")
    wait_for(lambda: codes(cluster, "/standby") == {"mail1": 503, "mail2": 200}, 10, "/standby")
    assert codes(cluster, "/health") == {"mail1": 200, "mail2": 200}
    assert codes(cluster, "/nope") == {"mail1": 404, "mail2": 404}
    status, body = get(cluster, "mail1", "/status")
    view = json.loads(body)
    assert status == 200 and view["role"] == "active" and view["lease_valid"] is True
    assert view["node"] == "mail1" and view["epoch"] == 1
    # The local lease's seconds left: renewed every T/4, valid for T - margin.
    assert 0 < view["lease_remaining"] <= cluster.session_timeout, view
    assert view["version"] and view["priority"] == 0 and view["loop_alive"] is True
    view2 = json.loads(get(cluster, "mail2", "/status")[1])
    assert view2["role"] == "standby" and view2["lease_holder"] == "mail1"
    assert view2["eligible"] is True and view2["lease_valid"] is False
    assert view2["lease_remaining"] == 0 and view2["why"] == ""
    status, body = get(cluster, "mail2", "/metrics")
    assert status == 200 and b'failoverd_role{role="standby"} 1.0' in body

    # Clients that connect and send nothing, held open on both nodes while mail1 dies.
    silent = [
        socket.create_connection(("127.0.0.1", cluster.http_ports[n]))  # type: ignore[attr-defined]
        for n in cluster.names
        for _ in range(10)
    ]
    try:
        t0 = time.monotonic()
        cluster.nodes["mail1"].kill()
        healths: list[int] = []

        def mail2_active() -> bool:
            healths.append(get(cluster, "mail2", "/health")[0])
            return get(cluster, "mail2", "/active")[0] == 200

        wait_for(mail2_active, 20, "mail2's /active to answer 200")
        took = time.monotonic() - t0
    finally:
        for s in silent:
            s.close()
    # The lease of the killed node expires after the session timeout; fencing and
    # promotion take well under a second here. The silent clients changed nothing.
    print(f"takeover seen on /active after {took:.2f}s with 20 silent clients")
    assert took < cluster.session_timeout + 5, took
    assert set(healths) == {200}, healths
    assert get(cluster, "mail2", "/standby")[0] == 503
    assert get(cluster, "mail1", "/active")[0] == 0  # killed: nobody answers there
    cluster.assert_never_two_serving()


MONITORING_DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"


def _documented_haproxy_backend() -> str:
    """The HAProxy example of docs/monitoring.md ("HAProxy"), as written there (a test
    of the documentation)."""
    text = MONITORING_DOC.read_text()
    start = text.index("backend smtp\n")
    return text[start : text.index("```", start)]


def _haproxy_states(sock: Path) -> dict[str, str]:
    """{server: UP|DOWN|...} of backend smtp, from HAProxy's stats socket."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return {}
    lines = data.decode().splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    cols = lines[0][2:].split(",")
    rows = [dict(zip(cols, line.split(","), strict=False)) for line in lines[1:] if line]
    servers = ("mail1", "mail2")  # not the BACKEND summary row
    return {r["svname"]: r["status"] for r in rows if r.get("svname") in servers}


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="deploy/install-deps.sh installs it")
def test_haproxy_with_the_documented_check_follows_the_active(
    cluster: Cluster, tmp_path: Path
) -> None:
    """docs/monitoring.md's `option httpchk GET /active` backend, pointed at two real daemons:
    HAProxy marks only the active UP, and the other one after a failover."""
    ports = cluster.http_ports  # type: ignore[attr-defined]
    backend = _documented_haproxy_backend()
    for name, node_ip in (("mail1", "10.0.0.11"), ("mail2", "10.0.0.12")):
        # Only the addresses change: the service port is never connected to here.
        backend = backend.replace(
            f"{node_ip}:25 check port 9468", f"127.0.0.1:{free_port()} check port {ports[name]}"
        )
    assert "10.0.0." not in backend and "option httpchk GET /active" in backend
    sock = tmp_path / "haproxy.sock"
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        f"global\n    stats socket {sock} level user\n"
        "defaults\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n"
        + backend
    )
    cluster.start("mail1")
    assert cluster.wait_active(timeout=20, via="mail1") == "mail1"
    cluster.start("mail2")
    proxy = subprocess.Popen(
        ["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        up = {"mail1": "UP", "mail2": "DOWN"}
        wait_for(lambda: _haproxy_states(sock) == up, 15, f"HAProxy to see {up}")
        cluster.nodes["mail1"].kill()
        assert cluster.wait_active(timeout=20, other_than="mail1", via="mail2") == "mail2"
        up = {"mail1": "DOWN", "mail2": "UP"}
        wait_for(lambda: _haproxy_states(sock) == up, 15, f"HAProxy to see {up}")
        # HAProxy resets each check's connection once it has the status line: that is
        # no error (before: a ConnectionResetError traceback in the log per check).
        log = cluster.nodes["mail2"].log_path.read_text(errors="replace")
        assert "Traceback" not in log and "ConnectionResetError" not in log
    finally:
        proxy.kill()
        out = proxy.communicate(timeout=10)[0]
        if proxy.returncode not in (-9, 0):
            print(out.decode(errors="replace"))


def _members(c: Cluster, via: str) -> dict[str, Any]:
    config = load_config(str(c.nodes[via].config_path))
    coord = Coordinator(config)
    coord.start(timeout=5)
    try:
        return coord.read_members(5)
    finally:
        coord.close()


def test_a_process_holding_the_metrics_port_does_not_keep_the_daemon_down(
    cluster: Cluster,
) -> None:
    """A local user who takes `metrics.listen` first must not keep failoverd down
    (before: it exited 2, which the unit never restarts, and the squatter answered
    /active for the load balancer). The endpoints are not needed for safety: the
    daemon runs and serves its role, says so (endpoint_bind_failed, its member
    status), and binds once the port is free."""
    port = cluster.http_ports["mail1"]  # type: ignore[attr-defined]
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    node = cluster.nodes["mail1"]
    try:
        cluster.start("mail1")
        proc = node.proc
        assert proc is not None

        def active_or_exited() -> bool:
            return proc.poll() is not None or cluster.active(via="mail1") == "mail1"

        wait_for(active_or_exited, 20, "mail1 to become active (or exit)")
        assert proc.poll() is None, f"failoverd exited {proc.returncode}: {node.events()[-3:]}"
        wait_for(lambda: any(n == "mail1" for n, _, _ in cluster.serving()), 10, "the service")
        failed = [e for e in node.events() if e.get("event") == "endpoint_bind_failed"]
        assert failed and failed[0]["level"] == "critical", failed
        assert f"127.0.0.1:{port}" in failed[0]["listen"], failed[0]
        assert "address already in use" in failed[0]["error"], failed[0]
        mine = _members(cluster, "mail1")["mail1"]
        assert "address already in use" in mine.endpoint_error, mine
        shown = cluster.ctl("status", via="mail1").stdout
        assert f"mail1 serves no HTTP endpoints: cannot listen on 127.0.0.1:{port}" in shown
    finally:
        squatter.close()
    wait_for(
        lambda: get(cluster, "mail1", "/active")[0] == 200, 40, "/active once the port is free"
    )
    assert any(e.get("event") == "endpoint_bound" for e in node.events())
    wait_for(lambda: _members(cluster, "mail1")["mail1"].endpoint_error == "", 10, "cleared")
    assert node.proc is not None and node.proc.poll() is None
    cluster.assert_never_two_serving()
