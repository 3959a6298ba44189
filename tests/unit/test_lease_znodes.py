"""The local lease with a fake clock, and strict znode decoding."""

from __future__ import annotations

import json

import pytest

from failoverd.zk.lease import LocalLease
from failoverd.zk.znodes import (
    Breadcrumb,
    Control,
    LockData,
    MemberStatus,
    Request,
    ZnodeError,
    encode,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_lease_runs_from_the_send_time_minus_the_margin() -> None:
    clock = FakeClock()
    lease = LocalLease(4.0, 1.0, clock)
    lease.grant(session=7, t_send=1000.0)
    clock.t = 1002.9
    assert lease.valid() and lease.remaining() == pytest.approx(0.1)
    clock.t = 1003.0
    assert not lease.valid()


def test_renewal_from_another_session_proves_nothing() -> None:
    clock = FakeClock()
    lease = LocalLease(4.0, 1.0, clock)
    lease.grant(7, 1000.0)
    assert not lease.renew(8, 1002.0)
    clock.t = 1003.5
    assert not lease.valid()


def test_late_answer_to_an_old_request_never_shortens_the_lease() -> None:
    clock = FakeClock()
    lease = LocalLease(4.0, 1.0, clock)
    lease.grant(7, 1000.0)
    assert lease.renew(7, 1002.0)
    assert lease.renew(7, 1001.0)
    clock.t = 1004.5
    assert lease.valid()


def test_revoked_lease_is_invalid_and_cannot_be_renewed() -> None:
    lease = LocalLease(4.0, 1.0, FakeClock())
    lease.grant(7, 1000.0)
    lease.revoke()
    assert not lease.valid() and not lease.renew(7, 1000.5)


def test_margin_outside_the_session_timeout_is_refused() -> None:
    with pytest.raises(ValueError):
        LocalLease(4.0, 4.0)


def test_znodes_round_trip() -> None:
    b = Breadcrumb("mail1", 3, "t", False)
    assert Breadcrumb.decode(encode(b)) == b
    rid = "0f8fad5b-d9cb-469f-a165-70867728950e"  # request ids are uuid4s
    c = Control(True, Request(rid, "mail2", 10.0, "mail1", "t"), None)
    assert Control.decode(encode(c)) == c
    m = MemberStatus("mail1", "active", True, 3, "0.1", "10.0.0.1", False, "r", "t", 1)
    assert MemberStatus.decode(encode(m)) == m
    assert LockData.decode(encode(LockData("mail1", "0x1"))).node == "mail1"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"\xff\xfe",
        b"not json",
        b"[1,2]",
        json.dumps({"node": "mail1", "epoch": 3, "since": "t", "clean": False}).encode(),  # no v
        json.dumps({"v": 2, "node": "mail1", "epoch": 3, "since": "t", "clean": False}).encode(),
        json.dumps({"v": 1, "node": "mail1", "epoch": "3", "since": "t", "clean": False}).encode(),
        json.dumps({"v": 1, "node": "mail1", "epoch": True, "since": "t", "clean": False}).encode(),
        json.dumps({"v": 1, "node": "mail1", "epoch": -1, "since": "t", "clean": False}).encode(),
        json.dumps({"v": 1, "node": "mail1", "epoch": 3, "since": "t", "clean": "yes"}).encode(),
    ],
)
def test_garbage_breadcrumb_is_an_error_never_nothing(raw: bytes | None) -> None:
    with pytest.raises(ZnodeError):
        Breadcrumb.decode(raw)


def test_garbage_control_and_member_are_errors() -> None:
    with pytest.raises(ZnodeError):
        Control.decode(b'{"v":1,"maintenance":"no"}')
    with pytest.raises(ZnodeError):
        Control.decode(b'{"v":1,"maintenance":false,"switchover":{"id":1}}')
    with pytest.raises(ZnodeError):
        MemberStatus.decode(encode(MemberStatus("m", "boss", True, 1, "v", "a", False, "r", "t")))
