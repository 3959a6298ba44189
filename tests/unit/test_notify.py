"""systemd notify and the watchdog, against real sockets and a file standing in for the device."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from failoverd.config import WatchdogConfig
from failoverd.node.notify import Watchdog, ready, sd_notify, status, stopping


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def received(sock: socket.socket) -> list[bytes]:
    out = []
    sock.setblocking(False)
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield sock, {"NOTIFY_SOCKET": path}
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, dict[str, str]]]:
    name = f"failoverd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    yield sock, {"NOTIFY_SOCKET": "@" + name}
    sock.close()


def test_sd_notify_sends_ready_to_a_path_socket(notify_socket):
    sock, env = notify_socket
    assert sd_notify("READY=1", env) is True
    assert received(sock) == [b"READY=1"]


def test_sd_notify_sends_to_an_abstract_socket(abstract_socket):
    sock, env = abstract_socket
    assert sd_notify("WATCHDOG=1", env) is True
    assert received(sock) == [b"WATCHDOG=1"]


def test_sd_notify_without_socket_returns_false():
    assert sd_notify("READY=1", {}) is False


def test_sd_notify_to_a_missing_socket_returns_false_without_raising(tmp_path):
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


def test_sd_notify_to_an_unsupported_address_returns_false():
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_ready_status_and_stopping_wrappers(notify_socket):
    sock, env = notify_socket
    assert ready("standby", env)
    assert status("active: lease won\nREADY=1", env)
    assert stopping(env)
    assert received(sock) == [
        b"READY=1\nSTATUS=standby",
        # A newline in the text cannot smuggle in another assignment.
        b"STATUS=active: lease won READY=1",
        b"STOPPING=1",
    ]


def test_systemd_watchdog_pets_at_a_quarter_of_watchdog_usec(notify_socket):
    sock, env = notify_socket
    clock = FakeClock()
    env = {**env, "WATCHDOG_USEC": "4000000"}
    wd = Watchdog(WatchdogConfig(systemd=True, timeout=4.0), env=env, clock=clock)
    assert wd.usec == 4_000_000
    assert wd.systemd_interval == pytest.approx(1.0)

    wd.pet()  # first pet goes out at once
    clock.now += 0.5
    wd.pet()  # rate-limited
    clock.now += 0.49
    wd.pet()
    assert received(sock) == [b"WATCHDOG=1"]
    clock.now += 0.01  # a full interval since the first pet
    wd.pet()
    wd.pet()
    assert received(sock) == [b"WATCHDOG=1"]


def test_systemd_watchdog_pets_when_watchdog_pid_is_ours(notify_socket):
    sock, env = notify_socket
    env = {**env, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    Watchdog(WatchdogConfig(systemd=True, timeout=1.0), env=env, clock=FakeClock()).pet()
    assert received(sock) == [b"WATCHDOG=1"]


def test_systemd_watchdog_does_not_pet_for_another_pid(notify_socket):
    sock, env = notify_socket
    env = {**env, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    wd = Watchdog(WatchdogConfig(systemd=True, timeout=1.0), env=env, clock=FakeClock())
    wd.pet()
    assert wd.usec is None
    assert received(sock) == []


def test_systemd_watchdog_off_without_watchdog_usec_or_config(notify_socket):
    sock, env = notify_socket
    Watchdog(WatchdogConfig(systemd=True), env=env, clock=FakeClock()).pet()
    Watchdog(WatchdogConfig(systemd=False), env={**env, "WATCHDOG_USEC": "1000000"}).pet()
    Watchdog(None, env={**env, "WATCHDOG_USEC": "1000000"}).pet()
    assert received(sock) == []


def test_device_gets_a_nul_per_interval_and_v_on_clean_close(tmp_path):
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    clock = FakeClock()
    # A regular file rejects WDIOC_SETTIMEOUT: not armed (test_watchdog_armed.py), yet petted.
    wd = Watchdog(WatchdogConfig(device=str(device), timeout=8.0), env={}, clock=clock)
    assert device.read_bytes() == b""  # opened lazily: not armed before the first pet

    wd.pet()
    clock.now += 1.0
    wd.pet()  # within timeout/4 = 2 s
    assert device.read_bytes() == b"\0"
    clock.now += 1.0
    wd.pet()
    assert device.read_bytes() == b"\0\0"

    wd.close(clean=True)
    assert device.read_bytes() == b"\0\0V"
    wd.pet()  # closed: no more pets
    assert device.read_bytes() == b"\0\0V"


def test_device_is_left_armed_on_unclean_close(tmp_path):
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    wd = Watchdog(WatchdogConfig(device=str(device), timeout=8.0), env={}, clock=FakeClock())
    wd.pet()
    wd.close(clean=False)
    assert device.read_bytes() == b"\0"


def test_device_that_cannot_be_opened_is_retried_without_raising(tmp_path):
    device = tmp_path / "missing"
    clock = FakeClock()
    wd = Watchdog(WatchdogConfig(device=str(device), timeout=4.0), env={}, clock=clock)
    wd.pet()
    assert wd.device_fd is None
    device.write_bytes(b"")
    clock.now += 0.5
    wd.pet()  # retries no faster than the pet interval
    assert device.read_bytes() == b""
    clock.now += 0.5
    wd.pet()
    assert device.read_bytes() == b"\0"
    wd.close(clean=True)


def test_both_watchdogs_are_petted(tmp_path, notify_socket):
    sock, env = notify_socket
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    cfg = WatchdogConfig(systemd=True, device=str(device), timeout=10.0)
    wd = Watchdog(cfg, env={**env, "WATCHDOG_USEC": "10000000"}, clock=FakeClock())
    wd.pet()
    assert received(sock) == [b"WATCHDOG=1"]
    assert device.read_bytes() == b"\0"
    wd.close(clean=True)


def test_pending_abandoned_work_leaves_the_device_unpetted_but_not_systemds(
    tmp_path, notify_socket
):
    """A node with abandoned work pending cannot trust its own stop: like a dirty node
    it stops petting the device, so the machine resets within watchdog.timeout, which
    is what a peer's lease-wait counts on. systemd's watchdog is still petted: a
    restarted daemon would be just as unclean (the record) and stop sweeping meanwhile."""
    from types import SimpleNamespace
    from unittest.mock import MagicMock

    from failoverd.node.daemon import Daemon
    from failoverd.node.decision import Role
    from failoverd.node.state import NodeState
    from failoverd.resources.abandoned import AbandonedWork

    sock, env = notify_socket
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    clock = FakeClock()
    cfg = WatchdogConfig(systemd=True, device=str(device), timeout=8.0)
    wd = Watchdog(cfg, env={**env, "WATCHDOG_USEC": "8000000"}, clock=clock)
    abandoned = AbandonedWork(tmp_path / "fence.lock", clock=clock)
    node: Any = SimpleNamespace(
        http=MagicMock(),
        state=NodeState(role=Role.STANDBY),
        abandoned=abandoned,
        lease=SimpleNamespace(valid=lambda: False),
        watchdog=wd,
    )
    Daemon._pet(node)
    assert device.read_bytes() == b"\0"
    abandoned.add("0123456789abcdef", "command mail start", 60.0, None)
    for _ in range(10):  # 20 s of the 60 s quiet period, pets every 2 s
        clock.now += 2.0
        Daemon._pet(node)
    assert device.read_bytes() == b"\0", "the device was petted while abandoned work was pending"
    assert len(received(sock)) == 11
    abandoned.ops.clear()  # confirmed gone: trusted again
    clock.now += 2.0
    Daemon._pet(node)
    assert device.read_bytes() == b"\0\0"
    wd.close(clean=True)
