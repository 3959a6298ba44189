"""A node contends and serves only with its watchdog device armed (failoverd/node/notify.py).

`lease-wait` on the peers trusts that a frozen active resets itself within
watchdog.timeout. A device that could not be opened, did not take the configured
timeout, will not say its timeout or has a longer one resets nothing in time: the
node is then not eligible, a standby does not contend and an active demotes. A fake
driver (tests/support/fakewatchdog.py) answers the ioctls for a regular file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from failoverd.config import WatchdogConfig
from failoverd.node import notify
from failoverd.node.decision import Act, decide
from failoverd.node.eligibility import eligibility
from failoverd.node.notify import WDIOC_GETTIMEOUT, WDIOC_SETTIMEOUT, Watchdog
from failoverd.zk.znodes import MemberStatus, WatchdogStatus, ZnodeError, encode
from tests.support.fakewatchdog import FakeWatchdogDriver
from tests.unit.test_decision import active, obs
from tests.unit.test_formats import old_release, raw
from tests.unit.test_notify import FakeClock


def install(monkeypatch: pytest.MonkeyPatch, driver: FakeWatchdogDriver) -> FakeWatchdogDriver:
    monkeypatch.setattr(notify, "fcntl", driver)
    return driver


def device_file(tmp_path: Path) -> Path:
    device = tmp_path / "watchdog0"
    device.write_bytes(b"")
    return device


def watchdog(device: Path, timeout: float = 10.0) -> Watchdog:
    return Watchdog(WatchdogConfig(device=str(device), timeout=timeout), env={}, clock=FakeClock())


def test_a_device_that_cannot_be_opened_makes_the_node_ineligible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, FakeWatchdogDriver())
    device = tmp_path / "watchdog0"  # does not exist
    wd = watchdog(device)
    wd.pet()
    why = f"watchdog device {device} not armed: cannot open {device}: No such file or directory"
    assert wd.problem == why
    assert eligibility(obs(watchdog_problem=wd.problem)).why == why
    assert not eligibility(obs(watchdog_problem=wd.problem)).eligible
    assert decide(obs(watchdog_problem=wd.problem)).act is Act.WAIT
    assert wd.published() == WatchdogStatus(armed=False, timeout=None, why=why)


@pytest.mark.parametrize(
    ("driver", "cause"),
    [
        (
            FakeWatchdogDriver(settable=False, gettable=False),
            "it did not take timeout 10s (WDIOC_SETTIMEOUT: Operation not supported)",
        ),
        (
            FakeWatchdogDriver(settable=False, timeout=60),
            "it did not take timeout 10s (WDIOC_SETTIMEOUT: Operation not supported)",
        ),
        (
            FakeWatchdogDriver(gettable=False),
            "its timeout is unknown (WDIOC_GETTIMEOUT: Operation not supported)",
        ),
        (
            FakeWatchdogDriver(minimum=30),
            "its timeout is 30s, longer than watchdog.timeout (10s)",
        ),
    ],
    ids=["settimeout-fails", "fixed-timeout", "gettimeout-fails", "longer-timeout"],
)
def test_a_device_without_the_configured_timeout_in_force_makes_the_node_ineligible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driver: FakeWatchdogDriver, cause: str
) -> None:
    install(monkeypatch, driver)
    device = device_file(tmp_path)
    wd = watchdog(device)
    wd.pet()
    why = f"watchdog device {device} not armed: {cause}"
    e = eligibility(obs(watchdog_problem=wd.problem))
    assert (e.eligible, e.why) == (False, why)
    assert decide(obs(watchdog_problem=wd.problem)).act is Act.WAIT
    assert wd.published() is not None and wd.published().armed is False  # type: ignore[union-attr]
    # The open device keeps being petted all the same: closing it without the magic
    # character would reset the machine, with the 'V' it might disarm a nowayout one.
    assert device.read_bytes() == b"\0"
    wd.close(clean=True)


def test_an_armed_device_leaves_the_node_eligible_and_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = install(monkeypatch, FakeWatchdogDriver())
    wd = watchdog(device_file(tmp_path), timeout=10.5)  # the device takes whole seconds
    wd.pet()
    assert driver.calls == [WDIOC_SETTIMEOUT, WDIOC_GETTIMEOUT]
    assert wd.problem == ""
    assert eligibility(obs(watchdog_problem=wd.problem)).eligible
    assert decide(obs(watchdog_problem=wd.problem)).act is Act.CONTEND
    assert wd.published() == WatchdogStatus(armed=True, timeout=10.0, why="")
    m = MemberStatus("mail1", "standby", True, None, "x", "a", False, "r", "t", 0)
    data = json.loads(encode(MemberStatus(**{**m.__dict__, "watchdog": wd.published()})))
    assert data["watchdog"] == {"armed": True, "timeout": 10.0, "why": ""}
    wd.close(clean=True)


def test_without_a_device_configured_the_node_stays_eligible_but_publishes_none_armed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, FakeWatchdogDriver())
    for cfg in (None, WatchdogConfig(systemd=True, timeout=10.0)):
        wd = Watchdog(cfg, env={}, clock=FakeClock())
        wd.pet()
        assert wd.problem == ""
        assert eligibility(obs(watchdog_problem=wd.problem)).eligible
        assert wd.published() == WatchdogStatus(False, None, "no watchdog device configured")


def test_an_active_whose_device_stops_taking_pets_demotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, FakeWatchdogDriver())
    device = device_file(tmp_path)
    clock = FakeClock()
    wd = Watchdog(WatchdogConfig(device=str(device), timeout=4.0), env={}, clock=clock)
    wd.pet()
    assert wd.problem == "" and decide(active(watchdog_problem=wd.problem)).act is Act.STAY
    # The driver goes away underneath the open file (here: writes now fail with ENOSPC).
    full = os.open("/dev/full", os.O_WRONLY)
    assert wd.device_fd is not None
    os.dup2(full, wd.device_fd)
    os.close(full)
    clock.now += 1.0
    wd.pet()
    why = f"watchdog device {device} not armed: petting it failed: No space left on device"
    assert wd.problem == why
    assert wd.published() == WatchdogStatus(False, 4.0, why)
    d = decide(active(watchdog_problem=wd.problem))
    assert (d.act, d.code) == (Act.DEMOTE, "watchdog")
    assert why in d.reason
    # It tries again; once the device takes pets and the timeout again, it is armed.
    clock.now += 1.0
    wd.pet()
    assert wd.problem == "" and wd.published() == WatchdogStatus(True, 4.0, "")
    wd.close(clean=True)


# -- the member status carries it: a new optional field (failoverd/zk/formats.py) ------


def member(**kw: object) -> MemberStatus:
    return MemberStatus("mail2", "active", True, 9, "x", "10.0.0.12", False, "r", "t", 1, **kw)  # type: ignore[arg-type]


def test_the_watchdog_field_round_trips_and_the_previous_release_ignores_it() -> None:
    for w in (WatchdogStatus(True, 10.0), WatchdogStatus(False, None, "cannot open /dev/x: EIO")):
        assert MemberStatus.decode(encode(member(watchdog=w))) == member(watchdog=w)
    seen = old_release().MemberStatus.decode(encode(member(watchdog=WatchdogStatus(True, 10.0))))
    assert (seen.node, seen.role, seen.epoch) == ("mail2", "active", 9)
    # What the previous release wrote reads as "not published".
    assert MemberStatus.decode(raw("member-active.json")).watchdog is None


@pytest.mark.parametrize(
    "bad",
    [
        True,
        [],
        {"timeout": 10},
        {"armed": "yes", "timeout": 10},
        {"armed": True, "timeout": True},
        {"armed": True, "timeout": 0},
        {"armed": True, "timeout": -5},
        {"armed": True, "timeout": 1e9},
        {"armed": True, "timeout": "10s"},
        {"armed": True, "timeout": 10, "why": 3},
    ],
)
def test_garbage_in_the_watchdog_field_makes_the_member_unreadable(bad: object) -> None:
    data = json.loads(encode(member()))
    data["watchdog"] = bad
    with pytest.raises(ZnodeError, match="watchdog"):
        MemberStatus.decode(json.dumps(data).encode())


# -- the decisions: like a lost lease, nothing outranks it ----------------------------

UNARMED = "watchdog device /dev/watchdog0 not armed: cannot open /dev/watchdog0: Permission denied"


@pytest.mark.parametrize(
    "situation",
    [{}, {"maintenance": True}, {"healthy_peer": False}, {"healthy": False, "flap_limited": True}],
    ids=["plain", "maintenance", "no-healthy-peer", "flap-limited"],
)
def test_an_active_without_an_armed_device_demotes_whatever_else_holds(
    situation: dict[str, object],
) -> None:
    d = decide(active(watchdog_problem=UNARMED, **situation))
    assert (d.act, d.code, d.reason) == (Act.DEMOTE, "watchdog", f"demoting: {UNARMED}")
    assert eligibility(active(watchdog_problem=UNARMED)).why == "it is the active node"


@pytest.mark.parametrize(
    "situation",
    [{}, {"failover_to": "mail1"}, {"switchover_pending": True, "switchover_to": "mail1"}],
    ids=["free-lease", "forced-failover-to-it", "switchover-to-it"],
)
def test_a_standby_without_an_armed_device_never_contends(situation: dict[str, object]) -> None:
    o = obs(watchdog_problem=UNARMED, **situation)
    d = decide(o)
    assert (d.act, d.reason) == (Act.WAIT, f"not contending: {UNARMED}")
    assert eligibility(o).why == UNARMED
    assert decide(obs(**situation)).act is Act.CONTEND  # the device is what stops it
