"""What one HTTP client may cost the daemon: a bounded request head (request line and
headers), a deadline for the whole head, and the connection cap. A real server on
loopback; the memory test runs it in a process of its own, whose peak RSS it reads.

Why this matters: the daemon runs with OOMScoreAdjust=-900, so memory it is made to
take is taken from the mail services first. Before, http.server read up to 100
header lines of 64 KiB each (about 6.4 MB) per request, and parsing them cost about
35 MB of RSS per connection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from failoverd.config import MetricsConfig
from failoverd.observe.endpoints import CLIENT_TIMEOUT, MAX_CONNECTIONS, StatusServer
from failoverd.observe.request_head import HEAD_LIMIT

SERVE = """
import sys
from failoverd.config import MetricsConfig
from failoverd.observe.endpoints import StatusServer
s = StatusServer(MetricsConfig("127.0.0.1", 0), lambda: b"m 1\\n", 1e9)
s.beat()
s.start()
print(s.port, flush=True)
sys.stdin.read()
"""


def _big_headers(lines: int, size: int) -> bytes:
    """A GET whose headers old http.server accepted: under 100 lines of under 64 KiB."""
    head = b"GET /health HTTP/1.0\r\n"
    head += b"".join(b"X-%d: %s\r\n" % (i, b"a" * size) for i in range(lines))
    return head + b"\r\n"


def _exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data` (as much as the server takes) and return what it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server answered and stopped reading: read its answer below
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except OSError:
            pass
        return got


def _status(answer: bytes) -> int:
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture
def served() -> Iterator[tuple[StatusServer, int]]:
    s = StatusServer(MetricsConfig("127.0.0.1", 0), lambda: b"m 1\n", 1e9)
    s.beat()
    s.start()
    try:
        yield s, s.port or 0
    finally:
        s.close()


def test_a_megabyte_of_headers_is_431_at_once(served: tuple[StatusServer, int]) -> None:
    _, port = served
    t0 = time.monotonic()
    answer = _exchange(port, _big_headers(99, 10_000))  # about 1 MB
    took = time.monotonic() - t0
    assert _status(answer) == 431, answer[:200]
    assert took < 2.0, took
    # A head just under the limit is still answered.
    assert _status(_exchange(port, _big_headers(1, HEAD_LIMIT - 200))) == 200


def test_a_long_request_line_is_414(served: tuple[StatusServer, int]) -> None:
    _, port = served
    answer = _exchange(port, b"GET /" + b"a" * 20_000 + b" HTTP/1.0\r\n\r\n")
    assert _status(answer) == 414, answer[:200]


def test_a_head_trickled_in_is_cut_off_at_the_request_deadline(
    served: tuple[StatusServer, int],
) -> None:
    """The socket timeout bounds each read; a client sending a byte now and then
    must not hold a connection (a thread) for longer than CLIENT_TIMEOUT in all."""
    _, port = served
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /health HTTP/1.0\r\nX-Slow: ")
        t0 = time.monotonic()
        closed_after = None
        while time.monotonic() - t0 < CLIENT_TIMEOUT + 3:
            try:
                s.sendall(b"a")
                s.settimeout(0.3)
                if s.recv(1024) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - t0
                break
    assert closed_after is not None, "a trickling client kept its connection"
    assert closed_after < CLIENT_TIMEOUT + 1.0, closed_after


def test_huge_headers_on_many_connections_do_not_grow_the_process() -> None:
    """Four clients sending 6.4 MB of headers each at once; the server's peak RSS
    (VmHWM) may grow by a few MB at most (before: about 35 MB per connection)."""
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        assert _status(_exchange(port, b"GET /health HTTP/1.0\r\n\r\n")) == 200  # warm up
        before = _kib(proc.pid, "VmRSS")
        payload = _big_headers(99, 64_000)
        statuses: list[int] = []

        def one() -> None:
            statuses.append(_status(_exchange(port, payload, timeout=20)))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        grew_mb = (_kib(proc.pid, "VmHWM") - before) / 1024
        print(f"peak RSS grew by {grew_mb:.1f} MB")
        assert grew_mb < 8, f"peak RSS grew by {grew_mb:.1f} MB; answers {statuses}"
        assert statuses == [431] * 4, statuses
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.kill()
        proc.wait(timeout=10)


def test_more_connections_than_the_cap_are_refused_while_checks_are_answered(
    served: tuple[StatusServer, int],
) -> None:
    """MAX_CONNECTIONS + 8 clients that each sent part of a head and stop: the server
    keeps at most MAX_CONNECTIONS of them (the rest are hung up on) and a health
    check still gets its answer at once."""
    s, port = served
    clients = []
    try:
        for _ in range(MAX_CONNECTIONS + 8):
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(b"GET /health HTTP/1.0\r\nX-Partial: " + b"a" * 4000)
            clients.append(c)
        t0 = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as r:
            assert r.status == 200
        assert time.monotonic() - t0 < 2.0
        assert s._server is not None and s._server.open <= MAX_CONNECTIONS
        hung_up = 0
        for c in clients:
            c.settimeout(0.2)
            try:
                hung_up += c.recv(1) == b""
            except TimeoutError:
                pass
            except OSError:
                hung_up += 1
        assert hung_up >= 8, hung_up
    finally:
        for c in clients:
            c.close()
