"""Fence readiness without processes: its config keys, what it publishes, what the
fence chain skips, and the member status field. Probes are fakes here; the real
ones run against a real sshd in tests/integration/test_fence_readiness.py."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from failoverd.config import (
    CommandFencerConfig,
    Config,
    ConfigError,
    FencerConfig,
    LeaseWaitFencerConfig,
    NodeConfig,
    PeerConfig,
    SshFencerConfig,
    ZooKeeperConfig,
    load_config,
)
from failoverd.fencing.base import FenceOutcome, FenceRequest, FenceTarget
from failoverd.fencing.chain import FenceChain
from failoverd.fencing.probes import ProbeResult, ssh_argv
from failoverd.fencing.readiness import FenceReadiness, method_names
from failoverd.zk.znodes import MemberStatus, ZnodeError, encode

SSH = SshFencerConfig(user="root", key_file="/k", known_hosts="/kh", check_interval=10.0)
POWER = CommandFencerConfig(argv=("pdu-off", "{node}"), check_argv=("pdu-status", "{node}"))


def config(*fencing: FencerConfig, peers: tuple[str, ...] = ("mail2",)) -> Config:
    return Config(
        path="t.yaml",
        cluster="t",
        node=NodeConfig("mail1", "10.0.0.11"),
        peers=tuple(PeerConfig(p, f"10.0.0.{12 + i}") for i, p in enumerate(peers)),
        zookeeper=ZooKeeperConfig("zk:2181"),
        fencing=fencing,
    )


class FakeProbes:
    """What each (method type, peer) probe answers; counts the calls."""

    def __init__(self) -> None:
        self.ok: dict[tuple[str, str], bool] = {}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, cfg: FencerConfig, target: FenceTarget, env: dict[str, str]) -> ProbeResult:
        self.calls.append((cfg.type, target.node))
        ok = self.ok.get((cfg.type, target.node), True)
        return ProbeResult(ok, "fine" if ok else "connection refused", 0.01)


# --- config ----------------------------------------------------------------------


def minimal(fencer: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster": "c",
        "node": {"name": "mail1", "address": "10.0.0.11"},
        "peers": {"mail2": {"address": "10.0.0.12"}},
        "zookeeper": {"hosts": "zk1:2181"},
        "fencing": [fencer],
    }


def load(tmp_path: Path, data: dict[str, Any]) -> Config:
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(str(path))


def problems(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, data)
    return [p.split(": ", 1)[1] for p in e.value.problems]


def ssh_fencer(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    key, kh = tmp_path / "key", tmp_path / "kh"
    key.write_text("x")
    key.chmod(0o600)
    kh.write_text("x")
    return {"type": "ssh", "user": "f", "key_file": str(key), "known_hosts": str(kh), **extra}


def test_ssh_connect_timeout_and_check_interval_default_and_parse(tmp_path: Path) -> None:
    (ssh,) = load(tmp_path, minimal(ssh_fencer(tmp_path))).fencing
    assert isinstance(ssh, SshFencerConfig)
    assert (ssh.connect_timeout, ssh.check_interval, ssh.timeout) == (0.5, 30.0, 5.0)
    fencer = ssh_fencer(tmp_path, connect_timeout="2s", check_interval="10s")
    (ssh,) = load(tmp_path, minimal(fencer)).fencing
    assert isinstance(ssh, SshFencerConfig)
    assert (ssh.connect_timeout, ssh.check_interval) == (2.0, 10.0)


def test_ssh_connect_timeout_longer_than_the_timeout_is_rejected(tmp_path: Path) -> None:
    fencer = ssh_fencer(tmp_path, connect_timeout="6s", timeout="5s")
    assert problems(tmp_path, minimal(fencer)) == [
        "fencing[0].connect_timeout: 6s is longer than timeout (5s), which bounds the whole fence"
    ]


def test_ssh_short_timeout_caps_the_default_connect_timeout(tmp_path: Path) -> None:
    (ssh,) = load(tmp_path, minimal(ssh_fencer(tmp_path, timeout="300ms"))).fencing
    assert isinstance(ssh, SshFencerConfig) and ssh.connect_timeout == 0.3


@pytest.mark.parametrize("interval", ["1s", "11m"])
def test_check_interval_out_of_range_is_rejected(tmp_path: Path, interval: str) -> None:
    fencer = {"type": "command", "argv": ["pdu-off"], "check_interval": interval}
    (problem,) = problems(tmp_path, minimal(fencer))
    assert problem.startswith("fencing[0].check_interval: must be 2s to 600s")


def test_command_fencer_check_argv_is_optional_and_validated(tmp_path: Path) -> None:
    (cmd,) = load(tmp_path, minimal({"type": "command", "argv": ["pdu-off"]})).fencing
    assert isinstance(cmd, CommandFencerConfig) and cmd.check_argv is None
    data = minimal({"type": "command", "argv": ["pdu-off"], "check_argv": ["pdu", "{node}"]})
    (cmd,) = load(tmp_path, data).fencing
    assert isinstance(cmd, CommandFencerConfig) and cmd.check_argv == ("pdu", "{node}")
    data = minimal({"type": "command", "argv": ["pdu-off"], "check_argv": "pdu status"})
    (problem,) = problems(tmp_path, data)
    assert problem.startswith("fencing[0].check_argv: expected a non-empty list of strings")


def test_ssh_probe_is_as_strict_as_the_fence() -> None:
    argv = ssh_argv(SSH, FenceTarget("mail2", "10.0.0.12"))
    opts = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    assert argv[1:3] == ["-F", "/dev/null"]  # no ~/.ssh/config, no /etc/ssh/ssh_config
    assert opts["StrictHostKeyChecking"] == "yes" and opts["BatchMode"] == "yes"
    assert (opts["UserKnownHostsFile"], opts["GlobalKnownHostsFile"]) == ("/kh", "/dev/null")
    assert (opts["IdentityFile"], opts["IdentitiesOnly"], opts["IdentityAgent"]) == (
        "/k",
        "yes",
        "none",
    )
    assert opts["ConnectTimeout"] == "1"
    assert argv[-2:] == ["10.0.0.12", "fence-self --dry-run"]


# --- what readiness publishes --------------------------------------------------------


def test_method_names_number_repeated_types() -> None:
    assert method_names([SSH, POWER, POWER, LeaseWaitFencerConfig()]) == [
        "ssh",
        "command",
        "command-2",
        "lease-wait",
    ]


def test_summary_is_absent_until_probed_and_false_if_any_peer_path_is_dead() -> None:
    probes = FakeProbes()
    r = FenceReadiness(config(SSH, POWER, peers=("mail2", "mail3")), probe_fn=probes)
    assert r.summary() == {}
    r.probe_once("mail2", 0)
    assert r.summary() == {}  # mail3's ssh path not probed yet: unknown
    probes.ok[("ssh", "mail3")] = False
    r.probe_once("mail3", 0)
    assert r.summary() == {"ssh": False}
    r.probe_once("mail2", 1)
    r.probe_once("mail3", 1)
    assert r.summary() == {"ssh": False, "command": True}


def test_a_broken_path_raises_fence_path_lost_and_its_recovery_an_info_event() -> None:
    probes = FakeProbes()
    metrics: list[tuple[str, str, bool]] = []
    changes: list[tuple[str, str, bool]] = []
    r = FenceReadiness(
        config(SSH),
        on_change=lambda peer, method, st: changes.append((peer, method, st.ok)),
        set_metric=lambda peer, method, ok: metrics.append((peer, method, ok)),
        probe_fn=probes,
    )
    with capture_logs() as logs:
        r.probe_once("mail2", 0)
        r.probe_once("mail2", 0)  # no change: no event
        probes.ok[("ssh", "mail2")] = False
        r.probe_once("mail2", 0)
        probes.ok[("ssh", "mail2")] = True
        r.probe_once("mail2", 0)
    events = [(e["event"], e["log_level"]) for e in logs]
    assert events == [
        ("fence_path_ready", "info"),
        ("fence_path_lost", "critical"),
        ("fence_path_restored", "info"),
    ]
    assert logs[1]["peer"] == "mail2" and logs[1]["reason"] == "connection refused"
    assert changes == [("mail2", "ssh", True), ("mail2", "ssh", False), ("mail2", "ssh", True)]
    assert metrics == [("mail2", "ssh", ok) for ok in (True, True, False, True)]


def test_known_dead_only_within_the_bounded_age(monkeypatch: pytest.MonkeyPatch) -> None:
    probes = FakeProbes()
    probes.ok[("ssh", "mail2")] = False
    r = FenceReadiness(config(SSH, POWER), probe_fn=probes)
    assert r.known_dead("mail2", 0) is None  # never probed: unknown, try it
    now = [1000.0]
    monkeypatch.setattr("failoverd.fencing.readiness.time.monotonic", lambda: now[0])
    r.probe_once("mail2", 0)
    why = r.known_dead("mail2", 0)
    assert why is not None and "connection refused" in why
    now[0] += 2 * SSH.check_interval + 0.1  # the prober is late: do not trust it
    assert r.known_dead("mail2", 0) is None
    assert r.known_dead("mail2", 1) is None


# --- what the chain does with it -----------------------------------------------------------


class Method:
    def __init__(self, name: str, ok: bool):
        self.name, self.ok, self.calls = name, ok, 0

    def fence(self, req: FenceRequest) -> FenceOutcome:
        self.calls += 1
        return FenceOutcome(self.name, self.ok, "done" if self.ok else "failed", 0.0)

    def check(self, target: FenceTarget) -> FenceOutcome:
        return FenceOutcome(self.name, True, "", 0.0)


REQ = FenceRequest(FenceTarget("mail2", "10.0.0.12"), 5, {}, None)


def test_chain_skips_a_method_known_dead_for_the_next_one() -> None:
    ssh, power = Method("ssh", True), Method("command", True)
    chain = FenceChain([ssh, power], known_dead=lambda node, i: "probe failed" if i == 0 else None)
    ok, outcomes = chain.fence(REQ)
    assert ok and ssh.calls == 0 and power.calls == 1
    assert [o.reason for o in outcomes] == ["skipped: probe failed", "done"]


def test_chain_never_skips_its_last_method() -> None:
    ssh, power = Method("ssh", True), Method("command", False)
    chain = FenceChain([ssh, power], known_dead=lambda node, i: "probe failed")
    ok, outcomes = chain.fence(REQ)
    assert not ok and ssh.calls == 0 and power.calls == 1  # tried, failed: no takeover
    (only,) = FenceChain([ssh], known_dead=lambda node, i: "probe failed").fence(REQ)[1]
    assert only.ok and ssh.calls == 1


# --- the member status field -------------------------------------------------------------


def member(**extra: Any) -> bytes:
    m = MemberStatus("mail2", "standby", True, None, "1", "10.0.0.12", False, "ok", "now")
    body = json.loads(encode(m))
    body.pop("fence_ready")
    return json.dumps({**body, **extra}).encode()


def test_member_status_without_fence_ready_decodes_as_empty() -> None:
    assert MemberStatus.decode(member()).fence_ready == {}


def test_member_status_fence_ready_round_trips() -> None:
    raw = member(fence_ready={"ssh": False, "command": True})
    assert MemberStatus.decode(raw).fence_ready == {"ssh": False, "command": True}


@pytest.mark.parametrize("garbage", [["ssh"], {"ssh": "yes"}, {"ssh": 1}, None])
def test_member_status_with_garbage_fence_ready_is_unreadable(garbage: object) -> None:
    with pytest.raises(ZnodeError, match="fence_ready"):
        MemberStatus.decode(member(fence_ready=garbage))


def probed_once(probes: FakeProbes) -> FenceReadiness:
    """Readiness with a 600 s interval, started, after its first probe (or 5 s)."""
    slow = SshFencerConfig(user="root", key_file="/k", known_hosts="/kh", check_interval=600.0)
    r = FenceReadiness(config(slow), probe_fn=probes)
    r.start()
    deadline = time.monotonic() + 5
    while not probes.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    return r


def test_a_peer_that_rejoins_is_probed_at_once_not_at_its_next_interval() -> None:
    # A peer powered back on: its path found dead before must not stay "known dead"
    # (and be skipped by a fence) for up to two intervals.
    probes = FakeProbes()
    probes.ok[("ssh", "mail2")] = False
    r = probed_once(probes)
    deadline = time.monotonic() + 5
    try:
        assert r.known_dead("mail2", 0) is not None
        probes.ok[("ssh", "mail2")] = True
        r.probe_soon("mail2")
        while r.summary() != {"ssh": True} and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.summary() == {"ssh": True} and len(probes.calls) == 2
    finally:
        r.stop()


def test_a_peer_is_down_only_when_every_method_toward_it_failed() -> None:
    probes = FakeProbes()
    r = FenceReadiness(config(SSH, POWER), probe_fn=probes)
    probes.ok[("ssh", "mail2")] = False
    r.probe_once("mail2", 0)
    assert r.paths_down() == ()  # power not probed yet: unknown is not down
    r.probe_once("mail2", 1)
    assert r.paths_down() == ()  # power works
    probes.ok[("command", "mail2")] = False
    r.probe_once("mail2", 1)
    assert r.paths_down() == ("mail2",)


def test_a_lost_path_fires_the_fence_path_lost_hook() -> None:
    from failoverd.observe import hooks

    fired: list[tuple[str, dict[str, object]]] = []

    class Runner:
        def fire(self, event: str, **ctx: object) -> None:
            fired.append((event, ctx))

    probes = FakeProbes()
    r = FenceReadiness(config(SSH), probe_fn=probes)
    hooks.install(Runner())  # type: ignore[arg-type]
    try:
        r.probe_once("mail2", 0)
        probes.ok[("ssh", "mail2")] = False
        r.probe_once("mail2", 0)
        r.probe_once("mail2", 0)  # still dead: no second hook
    finally:
        hooks.install(None)
    assert fired == [("fence_path_lost", {"peer": "mail2", "reason": "ssh: connection refused"})]


def test_a_flapping_zookeeper_connection_re_probes_at_most_once_per_gap() -> None:
    # One ssh login per flap would make a flapping link cost real CPU on both nodes.
    probes = FakeProbes()
    r = probed_once(probes)
    deadline = time.monotonic() + 5
    try:
        r.zookeeper_lost()
        while len(probes.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(5):
            r.zookeeper_lost()
        time.sleep(0.3)  # observe a span in which no further probe may start
        assert probes.calls == [("ssh", "mail2"), ("ssh", "mail2")]
    finally:
        r.stop()


def test_paths_found_dead_while_cut_off_are_re_probed_when_zookeeper_is_back() -> None:
    # A standby whose own network was down found every path dead; without a
    # re-probe it would stay "no working fencing path" (ineligible) for an interval.
    probes = FakeProbes()
    probes.ok[("ssh", "mail2")] = False
    r = probed_once(probes)
    deadline = time.monotonic() + 5
    try:
        assert r.paths_down() == ("mail2",)
        probes.ok[("ssh", "mail2")] = True
        r.zookeeper_back()
        while r.paths_down() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.paths_down() == () and r.summary() == {"ssh": True}
        r.zookeeper_back()  # nothing dead now: no probe
        time.sleep(0.3)  # observe a span in which no further probe may start
        assert len(probes.calls) == 2
    finally:
        r.stop()


# --- how soon a broken path is paged ---------------------------------------------------


def test_fence_path_lost_fires_within_one_interval_while_another_methods_check_hangs() -> None:
    # A power switch whose status action hangs until its timeout (20 s by default)
    # must not hold back the page for an ssh path that broke meanwhile: each method
    # is probed on its own schedule.
    import threading

    release = threading.Event()
    lost = threading.Event()
    ssh_ok = [True]

    def probes(cfg: FencerConfig, target: FenceTarget, env: dict[str, str]) -> ProbeResult:
        if cfg.type == "command":
            release.wait(10)  # the hanging power switch
            return ProbeResult(True, "outlet on", 0.0)
        return ProbeResult(ssh_ok[0], "fine" if ssh_ok[0] else "connection refused", 0.0)

    interval = 0.2
    ssh = SshFencerConfig(user="root", key_file="/k", known_hosts="/kh", check_interval=interval)
    hung = CommandFencerConfig(argv=("pdu-off",), check_argv=("pdu",), check_interval=interval)
    r = FenceReadiness(
        config(ssh, hung),
        on_change=lambda peer, method, st: lost.set() if not st.ok else None,
        probe_fn=probes,
    )
    with capture_logs():
        r.start()
        try:
            deadline = time.monotonic() + 5
            while r.results() == {} and time.monotonic() < deadline:
                time.sleep(0.01)
            assert r.results() == {"mail2": {"ssh": "OK"}}  # the power check still hangs
            ssh_ok[0] = False
            broke = time.monotonic()
            # One interval plus the probe (instant here), with room for a loaded machine.
            assert lost.wait(10 * interval), "no fence_path_lost while the power check hangs"
            print(f"fence_path_lost {time.monotonic() - broke:.2f}s after the path broke")
        finally:
            release.set()
            r.stop()
            # Let the released probe finish here, not log into a later test.
            while "command" not in r.results().get("mail2", {}) and time.monotonic() < deadline:
                time.sleep(0.01)


def test_an_unverified_path_is_neither_lost_nor_down_and_published_as_unverified() -> None:
    # A command fencer without check_argv: nothing could be checked. It is not a
    # broken path (no page, the chain still tries it, the node stays eligible), and
    # it is published as UNVERIFIED, never as OK.
    def probes(cfg: FencerConfig, target: FenceTarget, env: dict[str, str]) -> ProbeResult:
        return ProbeResult(True, "not verified: no check_argv", 0.0, verified=False)

    r = FenceReadiness(config(CommandFencerConfig(argv=("pdu-off",))), probe_fn=probes)
    with capture_logs() as logs:
        r.probe_once("mail2", 0)
    assert [e["event"] for e in logs] == ["fence_path_ready"]
    assert logs[0]["result"] == "UNVERIFIED"
    assert r.results() == {"mail2": {"command": "UNVERIFIED"}}
    assert r.paths_down() == () and r.known_dead("mail2", 0) is None


def test_lease_wait_readiness_follows_the_targets_published_watchdog() -> None:
    from failoverd.config import WatchdogConfig
    from failoverd.fencing.lease_wait import PublishedWatchdogs
    from failoverd.zk.znodes import WatchdogStatus

    published = PublishedWatchdogs()
    cfg = replace(config(LeaseWaitFencerConfig()), watchdog=WatchdogConfig(device="/dev/wd"))
    r = FenceReadiness(cfg, published=published)
    assert r.probe_once("mail2", 0).result == "UNVERIFIED"  # nothing seen yet
    m = MemberStatus("mail2", "active", True, 3, "1", "10.0.0.12", False, "", "now")
    published.saw({"mail2": replace(m, watchdog=WatchdogStatus(armed=True, timeout=10.0))})
    assert r.probe_once("mail2", 0).result == "OK"
    published.saw({"mail2": replace(m, watchdog=WatchdogStatus(False, None, "no device"))})
    with capture_logs() as logs:
        assert r.probe_once("mail2", 0).result == "FAIL"
    assert [e["event"] for e in logs] == ["fence_path_lost"]
    assert r.results() == {"mail2": {"lease-wait": "FAIL"}}
