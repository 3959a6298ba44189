"""The HTTP endpoints' answers, from snapshots, with fake clocks (a loopback socket
only where the point is that a silent client cannot hold up another request)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from failoverd.config import MetricsConfig
from failoverd.observe.endpoints import STEP_CALLS, NodeView, StatusServer, loop_stale_after

VIEW = NodeView(
    node="mail1",
    cluster="east",
    role="standby",
    epoch=None,
    healthy=True,
    eligible=True,
    why="",
    maintenance=False,
    reason="started",
    version="1.0",
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def server(cfg: MetricsConfig | None = None) -> tuple[StatusServer, Clock, Clock]:
    mono, boot = Clock(), Clock()
    s = StatusServer(cfg, lambda: b"failoverd_role 1\n", 10.0, clock=mono, lease_clock=boot)
    s.beat()
    return s, mono, boot


def code(s: StatusServer, path: str) -> int:
    return s.answer(path)[0]


def test_active_only_with_a_valid_lease_and_turns_503_when_the_deadline_passes() -> None:
    s, _, boot = server()
    assert code(s, "/active") == 503  # nothing published yet
    s.publish(replace(VIEW, role="active", eligible=False, lease_deadline=1001.5))
    assert code(s, "/active") == 200
    boot.t = 1001.5  # the loop published nothing since: the snapshot's lease ran out
    assert code(s, "/active") == 503
    s.publish(replace(VIEW, role="active", eligible=False, lease_deadline=None))
    assert code(s, "/active") == 503
    for role in ("standby", "fencing", "promoting", "demoting", "stopped"):
        s.publish(replace(VIEW, role=role, lease_deadline=5000.0))
        assert code(s, "/active") == 503, role


def test_standby_only_when_eligible_and_says_why_not() -> None:
    s, mono, _ = server()
    s.publish(VIEW)
    assert code(s, "/standby") == 200
    s.publish(replace(VIEW, eligible=False, why="it is dirty"))
    assert s.answer("/standby")[0] == 503 and b"it is dirty" in s.answer("/standby")[2]
    s.publish(replace(VIEW, role="active", lease_deadline=5000.0))
    assert code(s, "/standby") == 503
    s.publish(VIEW)
    mono.t += 11  # loop stalled: a stalled standby would not take over either
    assert code(s, "/standby") == 503


def test_health_follows_the_loop_heartbeat() -> None:
    s, mono, _ = server()
    assert code(s, "/health") == 200
    mono.t += 9.9
    assert code(s, "/health") == 200
    mono.t += 0.2
    assert code(s, "/health") == 503
    s.beat()
    assert code(s, "/health") == 200


def test_status_is_the_view_as_json_and_other_paths_are_404() -> None:
    s, _, _ = server()
    s.publish(replace(VIEW, role="active", epoch=7, lease_deadline=1002.0))
    c, ctype, body = s.answer("/status")
    got = json.loads(body)
    assert c == 200 and ctype == "application/json"
    assert got["node"] == "mail1" and got["role"] == "active" and got["epoch"] == 7
    assert got["lease_valid"] is True and got["loop_alive"] is True
    assert got["lease_holder"] is None and got["why"] == "" and got["version"] == "1.0"
    assert "lease_deadline" not in got  # a private clock value means nothing outside
    assert got["lease_remaining"] == 2.0 and got["priority"] == 0
    assert s.answer("/metrics")[:2][0] == 200 and b"failoverd_role" in s.answer("/metrics")[2]
    for path in ("/", "/activex", "/metrics/x", "/ACTIVE"):
        assert code(s, path) == 404, path
    assert code(s, "/active?x=1") == 200  # a query string does not change the path


def test_a_silent_client_does_not_hold_up_other_requests() -> None:
    s, _, _ = server(MetricsConfig("127.0.0.1", 0))
    s.start()
    try:
        s.publish(VIEW)
        silent = [socket.create_connection(("127.0.0.1", s.port or 0)) for _ in range(5)]
        t0 = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/standby", timeout=3) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{s.port}/nope", timeout=3)
        assert e.value.code == 404
        assert time.monotonic() - t0 < 2.0
        for sock in silent:
            sock.close()
    finally:
        s.close()


def test_publishing_never_waits_for_a_request_in_progress() -> None:
    """The loop's side is two attribute assignments: no lock a handler could hold."""
    s, _, _ = server()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            s.answer("/status")

    t = threading.Thread(target=hammer)
    t.start()
    try:
        t0 = time.monotonic()
        for i in range(2000):
            s.publish(replace(VIEW, epoch=i))
            s.beat()
        assert s.view is not None and s.view.epoch == 1999
        assert time.monotonic() - t0 < 5.0
    finally:
        stop.set()
        t.join()


def test_a_busy_port_is_said_loudly_and_retried_until_it_is_free() -> None:
    """start() never raises (the daemon must not exit over its endpoints): it logs
    endpoint_bind_failed, keeps the reason for the member status, and binds once the
    port is free."""
    from structlog.testing import capture_logs

    from failoverd.observe import endpoints

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    s, _, _ = server(MetricsConfig("127.0.0.1", port))
    try:
        with capture_logs() as logs:
            s.start()
        assert s.port is None
        assert s.bind_error == f"cannot listen on 127.0.0.1:{port}: address already in use"
        assert logs[0]["event"] == "endpoint_bind_failed" and logs[0]["log_level"] == "critical"
        assert logs[0]["listen"] == f"127.0.0.1:{port}" and logs[0]["error"] == s.bind_error
        taken.close()
        deadline = time.monotonic() + endpoints.BIND_RETRY * 3 + 1
        while s.port is None:
            assert time.monotonic() < deadline, "not bound after the port was freed"
            time.sleep(0.05)
        assert s.bind_error == ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as r:
            assert r.status == 200
    finally:
        taken.close()
        s.close()


def test_the_endpoint_port_is_never_shared_with_another_listener() -> None:
    """SO_REUSEADDR only, never SO_REUSEPORT: a squatter who set SO_REUSEPORT on the
    port cannot join our socket and silently answer part of the checks."""
    s, _, _ = server(MetricsConfig("127.0.0.1", 0))
    s.start()
    try:
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError), squatter:
            squatter.bind(("127.0.0.1", s.port or 0))
            squatter.listen()
    finally:
        s.close()


def test_status_counts_the_lease_down_between_snapshots_and_never_below_zero() -> None:
    s, _, boot = server()
    s.publish(replace(VIEW, role="active", priority=3, lease_deadline=1002.0))
    boot.t = 1001.25  # no new snapshot: the lease's own clock moved on
    got = json.loads(s.answer("/status")[2])
    assert got["lease_remaining"] == 0.75 and got["lease_valid"] is True
    assert got["priority"] == 3
    boot.t = 1003.0
    got = json.loads(s.answer("/status")[2])
    assert got["lease_remaining"] == 0.0 and got["lease_valid"] is False
    s.publish(VIEW)  # a standby holds no lease
    assert json.loads(s.answer("/status")[2])["lease_remaining"] == 0.0


def test_the_loop_is_stale_only_past_an_idle_tick_and_its_bounded_calls() -> None:
    """T = 3 s: calls are bounded by T/2, so a step may legitimately sit 6 x 1.5 s
    in ZooKeeper calls after an idle tick of 0.5 s; longer than that is a stall."""
    assert loop_stale_after(0.5, 1.5) == 0.5 + STEP_CALLS * 1.5 == 9.5
    mono = Clock()
    s = StatusServer(None, lambda: b"", loop_stale_after(0.5, 1.5), clock=mono)
    s.beat()
    mono.t += 9.4
    assert code(s, "/health") == 200
    mono.t += 0.2
    assert code(s, "/health") == 503


def test_more_silent_clients_than_the_cap_do_not_lock_a_health_check_out() -> None:
    """A load balancer's check must get its answer even while the connection cap is
    full of clients that connected and sent nothing: the oldest silent one makes
    room (before: the check's connection was closed unanswered until a silent
    client's 5 s timeout, long enough for `fall 2` at `inter 1s` to mark the
    active down)."""
    from failoverd.observe.endpoints import MAX_CONNECTIONS

    s, _, _ = server(MetricsConfig("127.0.0.1", 0))
    s.start()
    silent: list[socket.socket] = []
    try:
        s.publish(VIEW)
        silent = [
            socket.create_connection(("127.0.0.1", s.port or 0)) for _ in range(MAX_CONNECTIONS + 8)
        ]
        t0 = time.monotonic()
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/standby", timeout=3) as r:
                assert r.status == 200
        assert time.monotonic() - t0 < 2.0
        # The silent ones hung up on have ended: threads stay within the cap.
        deadline = time.monotonic() + 3
        while s._server is not None and s._server.open > MAX_CONNECTIONS:
            assert time.monotonic() < deadline, s._server.open
            time.sleep(0.01)
    finally:
        for sock in silent:
            sock.close()
        s.close()
