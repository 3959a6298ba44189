"""Fence readiness against a real sshd on loopback.

The peer "mail2" is this machine: its sshd forces `failoverd -c mail2.yaml
fence-self --from-ssh`, as in production, so every probe is a real login with the
fence key whose forced command runs the real `fence-self --dry-run`. Each way
the ssh path breaks (a host key that does not match, a revoked key, a stopped
sshd) must show as not ready within one probe interval, and as ready again once
repaired.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from failoverd.config import (
    CommandFencerConfig,
    Config,
    NodeConfig,
    PeerConfig,
    SshFencerConfig,
    ZooKeeperConfig,
)
from failoverd.fencing.chain import FenceChain
from failoverd.fencing.command import CommandFencer
from failoverd.fencing.readiness import FenceReadiness
from failoverd.fencing.ssh import SshFencer
from tests.integration.cluster import Cluster, wait_for
from tests.integration.test_fencing import request
from tests.support.sshd import Sshd, keygen
from tests.support.zookeeper import Ensemble, ZooKeeperServer, free_port

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
# The shortest interval the config accepts: each test waits a few of them.
INTERVAL = 2.0


@dataclass
class Peer:
    sshd: Sshd
    key_file: Path
    pubkey: str
    known_hosts: Path

    def ssh(self, **overrides: object) -> SshFencerConfig:
        base: dict[str, object] = {
            "user": self.sshd.user,
            "key_file": str(self.key_file),
            "known_hosts": str(self.known_hosts),
            "port": self.sshd.port,
            "timeout": 5.0,
            "check_interval": INTERVAL,
        }
        return SshFencerConfig(**{**base, **overrides})  # type: ignore[arg-type]

    def ssh_entry(self, **overrides: object) -> dict[str, object]:
        """The same fencer as a `fencing:` entry of a daemon's config file."""
        return {
            "type": "ssh",
            "user": self.sshd.user,
            "key_file": str(self.key_file),
            "known_hosts": str(self.known_hosts),
            "port": self.sshd.port,
            **overrides,
        }


@pytest.fixture
def peer(sshd: Sshd, tmp_path: Path) -> Peer:
    key_file = tmp_path / "fence_key"
    pubkey = keygen(key_file, "failoverd-fence@mail1")
    known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts")
    target_config = tmp_path / "mail2.yaml"
    target_config.write_text(
        yaml.safe_dump(
            {
                "cluster": "test",
                "node": {
                    "name": "mail2",
                    "address": "127.0.0.1",
                    "state_dir": str(tmp_path / "mail2-state"),
                },
                "peers": {"mail1": {"address": "127.0.0.1"}},
                "zookeeper": {"hosts": "127.0.0.1:1"},
                "resources": [{"type": "command", "start": ["true"], "stop": ["true"]}],
                "fencing": [{"type": "command", "argv": ["true"]}],
            }
        )
    )
    sshd.authorize(
        pubkey,
        f"cd {shlex.quote(str(REPO))} && exec {shlex.quote(PY)} -m failoverd.main "
        f"-c {shlex.quote(str(target_config))} fence-self --from-ssh",
    )
    return Peer(sshd, key_file, pubkey, known_hosts)


def config(*fencing: object) -> Config:
    return Config(
        path="mail1.yaml",
        cluster="test",
        node=NodeConfig("mail1", "127.0.0.1"),
        peers=(PeerConfig("mail2", "127.0.0.1"),),
        zookeeper=ZooKeeperConfig("127.0.0.1:1"),
        fencing=fencing,  # type: ignore[arg-type]
    )


@pytest.fixture
def running() -> Iterator[Callable[[Config], FenceReadiness]]:
    started: list[FenceReadiness] = []

    def start(cfg: Config) -> FenceReadiness:
        r = FenceReadiness(cfg)
        r.start()
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def wait_ready(r: FenceReadiness, want: dict[str, bool], timeout: float) -> float:
    """Seconds until r.summary() == want; fails after timeout."""
    t0 = time.monotonic()
    while r.summary() != want:
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"fence_ready is {r.summary()}, not {want} after {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - t0


# A flip must come within one interval, plus the probe that notices it (a failed
# login, a refused connect: well under a second on loopback, more on a busy machine).
FLIP = INTERVAL + 1.5


def test_ssh_readiness_probe_runs_the_forced_dry_run(peer: Peer) -> None:
    from failoverd.fencing.base import FenceTarget
    from failoverd.fencing.probes import probe

    res = probe(peer.ssh(), FenceTarget("mail2", "127.0.0.1"), {})
    assert res.ok, res.reason
    assert "mail2 can be fenced" in res.reason  # the remote fence-self's verdict line


def test_changed_host_key_flips_fence_ready_within_one_interval(
    peer: Peer, running: Callable[[Config], FenceReadiness], tmp_path: Path
) -> None:
    r = running(config(peer.ssh()))
    wait_ready(r, {"ssh": True}, 10)
    other = tmp_path / "other_host_key"
    keygen(other, "not-the-peer")
    kind, key = other.with_suffix(".pub").read_text().split()[:2]
    with capture_logs() as logs:
        peer.sshd.write_known_hosts(peer.known_hosts, f"[127.0.0.1]:{peer.sshd.port} {kind} {key}")
        took = wait_ready(r, {"ssh": False}, FLIP)
        peer.sshd.write_known_hosts(peer.known_hosts)
        wait_ready(r, {"ssh": True}, FLIP)
    print(f"host key changed: fence_ready false after {took:.2f}s")
    lost = [e for e in logs if e["event"] == "fence_path_lost"]
    assert len(lost) == 1 and "host key" in lost[0]["reason"], lost
    assert lost[0]["log_level"] == "critical" and lost[0]["peer"] == "mail2"
    assert [e["event"] for e in logs if e["event"] == "fence_path_restored"] == [
        "fence_path_restored"
    ]


def test_revoked_key_flips_fence_ready_within_one_interval(
    peer: Peer, running: Callable[[Config], FenceReadiness]
) -> None:
    r = running(config(peer.ssh()))
    wait_ready(r, {"ssh": True}, 10)
    authorized = peer.sshd.authorized_keys.read_text()
    with capture_logs() as logs:
        peer.sshd.authorized_keys.write_text("")  # the peer revoked our fence key
        took = wait_ready(r, {"ssh": False}, FLIP)
        peer.sshd.authorized_keys.write_text(authorized)
        wait_ready(r, {"ssh": True}, FLIP)
    print(f"key revoked: fence_ready false after {took:.2f}s")
    (lost,) = [e for e in logs if e["event"] == "fence_path_lost"]
    assert "authentication" in lost["reason"], lost


def test_stopped_sshd_flips_fence_ready_within_one_interval(
    peer: Peer, running: Callable[[Config], FenceReadiness]
) -> None:
    r = running(config(peer.ssh()))
    wait_ready(r, {"ssh": True}, 10)
    with capture_logs() as logs:
        peer.sshd.stop()
        took = wait_ready(r, {"ssh": False}, FLIP)
        peer.sshd.start()
        wait_ready(r, {"ssh": True}, FLIP)
    print(f"sshd stopped: fence_ready false after {took:.2f}s")
    (lost,) = [e for e in logs if e["event"] == "fence_path_lost"]
    assert "refused" in lost["reason"], lost


def test_command_fencer_check_argv_is_its_readiness(
    running: Callable[[Config], FenceReadiness], tmp_path: Path
) -> None:
    flag = tmp_path / "pdu-broken"
    status = [PY, "-c", f"import os, sys; sys.exit(1 if os.path.exists({str(flag)!r}) else 0)"]
    power = CommandFencerConfig(argv=("true",), check_argv=tuple(status), check_interval=INTERVAL)
    r = running(config(power))
    wait_ready(r, {"command": True}, 10)
    flag.touch()
    wait_ready(r, {"command": False}, FLIP)
    flag.unlink()
    wait_ready(r, {"command": True}, FLIP)


def test_fence_skips_a_path_its_probe_found_dead_and_goes_straight_to_power(
    peer: Peer, running: Callable[[Config], FenceReadiness], tmp_path: Path
) -> None:
    # The peer's ssh answers nothing at all (a powered-off host): the fence would
    # otherwise wait out connect_timeout before trying the power switch.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never listening: connect is refused
        dead = peer.ssh(port=silent.getsockname()[1], connect_timeout=1.0)
        power_log = tmp_path / "power-calls"
        power = CommandFencerConfig(argv=("sh", "-c", f"echo {{node}} >> {power_log}"))
        cfg = config(dead, power)
        r = running(cfg)
        wait_ready(r, {"ssh": False, "command": True}, 10)
        chain = FenceChain([SshFencer(dead), CommandFencer(power)], known_dead=r.known_dead)
        ok, outcomes = chain.fence(request())
    assert ok, outcomes
    assert outcomes[0].reason.startswith("skipped: its readiness probe"), outcomes[0]
    assert outcomes[0].took == 0.0
    assert power_log.read_text() == "mail2\n"


# ---------------------------------------------------------------------------
# the daemon publishes it: member status, failoverctl status, metrics
# ---------------------------------------------------------------------------


def test_daemons_publish_fence_ready_in_status_and_metrics(
    zk: ZooKeeperServer, peer: Peer, tmp_path: Path
) -> None:
    root = tmp_path / "c"
    ssh = peer.ssh_entry(timeout="3s", check_interval=f"{INTERVAL:g}s", verify_ports=[])
    power = {"type": "command", "argv": [PY, "-m", "tests.support.localfence", str(root), "{node}"]}
    port = free_port()
    c = Cluster(root, zk.address, fencing=[ssh, power])
    c.extra = {"metrics": {"listen": f"127.0.0.1:{port}"}}
    c.write_config("mail2", 1)  # only mail2 serves metrics (one port per node)
    try:
        c.start()
        c.wait_active(timeout=20)

        def ready() -> dict[str, dict[str, bool]]:
            return {m["node"]: m["fence_ready"] for m in c.status()["members"]}

        both = {"ssh": True, "command": True}
        wait_for(lambda: ready() == {"mail1": both, "mail2": both}, 15, "both fence_ready")
        out = c.ctl("status", "--wide")  # each method by name, with what its probe verified
        # This chain's command fencer has no check_argv: nothing verifies it.
        assert "command:UNVERIFIED,ssh:OK" in out.stdout, out.stdout
        assert scrape(port)[("failoverd_fence_ready", (("method", "ssh"), ("peer", "mail1")))] == 1

        peer.sshd.stop()
        broken = {"ssh": False, "command": True}
        wait_for(lambda: ready() == {"mail1": broken, "mail2": broken}, FLIP + 2, "ssh dead")
        st = json.loads(c.ctl("status", "--json").stdout)
        assert {m["node"]: m["fence_ready"] for m in st["members"]}["mail2"] == broken
        assert "command:UNVERIFIED,ssh:FAIL" in c.ctl("status", "--wide").stdout
        # The table names the failed one first, so a narrow column still shows it.
        assert "ssh:FAIL," in c.ctl("status").stdout
        assert scrape(port)[("failoverd_fence_ready", (("method", "ssh"), ("peer", "mail1")))] == 0
        lost = [e for e in c.nodes["mail2"].events() if e.get("event") == "fence_path_lost"]
        assert lost and lost[0]["level"] == "critical" and lost[0]["peer"] == "mail1", lost
    finally:
        c.stop()
        peer.sshd.start()  # the fixture stops it


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body.decode())
        for s in fam.samples
    }


def test_fence_self_starts_without_structlog(tmp_path: Path) -> None:
    # fence-self runs for every fence and every readiness probe; structlog (and the
    # asyncio it imports) was a quarter of its start-up.
    cfg = tmp_path / "mail2.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "cluster": "test",
                "node": {"name": "mail2", "address": "127.0.0.1", "state_dir": str(tmp_path)},
                "peers": {"mail1": {"address": "127.0.0.1"}},
                "zookeeper": {"hosts": "127.0.0.1:1"},
                "resources": [{"type": "command", "start": ["true"], "stop": ["true"]}],
                "fencing": [{"type": "command", "argv": ["true"]}],
            }
        )
    )
    code = (
        "import sys; from failoverd.main import main; "
        f"rc = main(['-c', {str(cfg)!r}, 'fence-self', '--dry-run']); "
        "print(sorted(m for m in ('structlog', 'asyncio', 'paramiko') if m in sys.modules))"
    )
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert p.stdout.splitlines()[-1] == "[]", p.stdout + p.stderr
    assert json.loads(p.stderr.splitlines()[-1])["event"] == "fence_self_dry_run"


def test_a_standby_that_loses_its_zookeeper_server_re_probes_its_fence_paths_at_once(
    peer: Peer, ensemble: Ensemble, make_cluster: Callable[..., Cluster]
) -> None:
    # The ZooKeeper-minority fault: the active is cut off with the ZooKeeper leader;
    # the standby's server drops its clients, and the takeover comes a full T after
    # the majority's new election. Probed now, a dead ssh path is skipped then
    # instead of costing its connect_timeout; probed at its interval, it is not.
    zk1, zk2, _ = ensemble.servers
    # check_interval far beyond this test: only the event can probe.
    ssh = peer.ssh_entry(timeout="5s", check_interval="600s")
    power = {"type": "command", "argv": ["false"], "timeout": "5s"}
    c = make_cluster(zk_hosts={"mail1": zk1.address, "mail2": zk2.address}, fencing=[ssh, power])
    c.start()
    assert c.wait_active(timeout=30, via="mail2") == "mail1"

    def ssh_events(name: str) -> list[dict[str, object]]:
        return [e for e in c.nodes["mail2"].events() if e.get("event") == name]

    wait_for(lambda: ssh_events("fence_path_ready"), 15, "mail2's first ssh probe")
    peer.sshd.stop()  # the path dies; mail2's next probe by interval is 10 minutes away
    zk2.pause()  # mail2's only server stops answering: it loses its connection
    try:
        lost = wait_for(lambda: ssh_events("fence_path_lost"), 10, "a re-probe on disconnect")
    finally:
        zk2.resume()
    assert lost[0]["peer"] == "mail1" and lost[0]["method"] == "ssh", lost


def test_ssh_probe_holds_a_silent_peer_to_connect_timeout_like_the_fence(peer: Peer) -> None:
    # ssh's own ConnectTimeout is whole seconds; the fence gives the TCP connect
    # connect_timeout (0.5 s). A probe started when the standby lost ZooKeeper must
    # know a silent peer dead as soon as the fence would, or it ends after the takeover.
    from failoverd.fencing.base import FenceTarget
    from failoverd.fencing.probes import probe

    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)  # never accepted: once its queue is full, SYNs are dropped
        fill = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(hole.getsockname())
            fill.append(s)
        try:
            cfg = peer.ssh(port=hole.getsockname()[1], connect_timeout=0.5)
            res = probe(cfg, FenceTarget("mail2", "127.0.0.1"), {})
        finally:
            for s in fill:
                s.close()
    assert not res.ok
    assert res.reason.endswith("within 0.5s (connect_timeout)"), res.reason
