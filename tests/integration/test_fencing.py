"""Fencing against a real sshd on loopback.

The target "mail2" is this machine: its sshd forces `failoverd -c mail2.yaml fence-self
--from-ssh`, exactly as deploy/fencing/authorized_keys.example does, and its one
resource is a real process listening on a loopback port (the "mail service"), stopped
by a `command` resource. A fence is judged by what really happened: the port refuses
connections and the marker holds the fenced epoch.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from failoverd.config import (
    CommandFencerConfig,
    Config,
    LeaseWaitFencerConfig,
    NodeConfig,
    SshFencerConfig,
    WatchdogConfig,
    ZooKeeperConfig,
)
from failoverd.fencing.base import FenceRequest, FenceTarget
from failoverd.fencing.chain import FenceChain, build_fence_chain
from failoverd.fencing.command import CommandFencer
from failoverd.fencing.lease_wait import PublishedWatchdogs
from failoverd.fencing.marker import FenceMarker
from failoverd.fencing.ssh import SshFencer
from failoverd.zk.znodes import MemberStatus, WatchdogStatus
from tests.support.sshd import Sshd, free_port, keygen, wait_accepting

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
TARGET = FenceTarget("mail2", "127.0.0.1")

# The "mail service": accepts and closes connections until killed.
SERVE = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
while True:
    s.accept()[0].close()
"""
# Its stop command: kill it, return once the port refuses (idempotent: exit 0 if gone).
STOP = """
import os, signal, socket, sys, time
pidfile, port = sys.argv[1], int(sys.argv[2])
try:
    os.kill(int(open(pidfile).read()), signal.SIGTERM)
except (FileNotFoundError, ProcessLookupError):
    pass
for _ in range(500):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        sys.exit(0)
    time.sleep(0.01)
sys.exit(1)
"""


@dataclass
class Service:
    port: int
    pidfile: Path
    proc: subprocess.Popen[bytes]

    def accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


@dataclass
class Lab:
    """Both sides of one fence: the winner's ssh settings and the target's files."""

    sshd: Sshd
    service: Service
    key_file: Path
    pubkey: str
    known_hosts: Path
    state_dir: Path
    target_config: Path

    def ssh(self, **overrides: object) -> SshFencerConfig:
        cfg = SshFencerConfig(
            user=self.sshd.user,
            key_file=str(self.key_file),
            known_hosts=str(self.known_hosts),
            port=self.sshd.port,
            timeout=5.0,
            verify_ports=(self.service.port,),
        )
        return replace(cfg, **overrides)  # type: ignore[arg-type]

    def force(self, command: str) -> None:
        self.sshd.authorize(self.pubkey, command)

    def force_fence_self(self) -> None:
        self.force(
            f"cd {shlex.quote(str(REPO))} && exec {shlex.quote(PY)} -m failoverd.main "
            f"-c {shlex.quote(str(self.target_config))} fence-self --from-ssh"
        )

    def marker(self) -> FenceMarker:
        return FenceMarker(self.state_dir)


def request(new_epoch: int = 7) -> FenceRequest:
    env = {
        "FAILOVERD_CLUSTER": "test",
        "FAILOVERD_NODE": "mail1",
        "FAILOVERD_EPOCH": str(new_epoch),
        "FAILOVERD_TARGET": TARGET.node,
    }
    return FenceRequest(TARGET, new_epoch, env, lock_free_since=None)


def config(*fencing: object, watchdog: WatchdogConfig | None = None) -> Config:
    return Config(
        path="test.yaml",
        cluster="test",
        node=NodeConfig("mail1", "127.0.0.1"),
        peers=(),
        zookeeper=ZooKeeperConfig("127.0.0.1:1", session_timeout=0.2, lease_margin=0.05),
        fencing=fencing,  # type: ignore[arg-type]
        watchdog=watchdog,
    )


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    port = free_port()
    proc = subprocess.Popen([PY, "-c", SERVE, str(port)], start_new_session=True)
    pidfile = tmp_path / "service.pid"
    pidfile.write_text(str(proc.pid))
    wait_accepting("127.0.0.1", port, 5.0)
    yield Service(port, pidfile, proc)
    proc.kill()
    proc.wait()


@pytest.fixture
def lab(sshd: Sshd, service: Service, tmp_path: Path) -> Lab:
    key_file = tmp_path / "fence_key"
    pubkey = keygen(key_file, "failoverd-fence@mail1")
    known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts")
    state_dir = tmp_path / "mail2-state"
    target_config = tmp_path / "mail2.yaml"
    stop = [PY, "-c", STOP, str(service.pidfile), str(service.port)]
    target_config.write_text(
        yaml.safe_dump(
            {
                "cluster": "test",
                "node": {"name": "mail2", "address": "127.0.0.1", "state_dir": str(state_dir)},
                "peers": {"mail1": {"address": "127.0.0.1"}},
                "zookeeper": {"hosts": "127.0.0.1:1"},
                "resources": [
                    {"type": "command", "start": ["true"], "stop": stop, "timeout": "3s"}
                ],
                # mail2's own fencing config sets how long its fence-self waits for the
                # fence lock: half the ssh timeout.
                "fencing": [
                    {
                        "type": "ssh",
                        "user": "root",
                        "key_file": str(key_file),
                        "known_hosts": str(known_hosts),
                        "timeout": "2s",
                        "verify_ports": [service.port],
                    }
                ],
                "log": {"format": "json", "level": "info"},
            }
        )
    )
    lab = Lab(sshd, service, key_file, pubkey, known_hosts, state_dir, target_config)
    lab.force_fence_self()
    return lab


# ---------------------------------------------------------------------------
# ssh: the working path
# ---------------------------------------------------------------------------


def test_ssh_fence_stops_the_remote_service_verifies_its_port_and_writes_the_marker(
    lab: Lab,
) -> None:
    t0 = time.monotonic()
    ok, outcomes = FenceChain([SshFencer(lab.ssh())]).fence(request(new_epoch=7))
    took = time.monotonic() - t0
    print(f"ssh fence (connect + remote fence-self + verify) took {took * 1000:.0f} ms")

    assert ok, outcomes
    (o,) = outcomes
    assert (o.method, o.ok) == ("ssh", True)
    assert o.reason == f"remote fence-self exited 0; ports {lab.service.port} closed"
    assert not lab.service.accepts()
    # Every epoch below the winner's is fenced: a frozen daemon at epoch 6 stops there.
    assert lab.marker().fenced_epoch() == 6
    assert lab.marker().blocks(6) and not lab.marker().blocks(7)
    assert took < 3.0


def test_ssh_fence_never_lowers_the_marker(lab: Lab) -> None:
    lab.marker().write(9, by="earlier fence")
    ok, outcomes = FenceChain([SshFencer(lab.ssh())]).fence(request(new_epoch=5))
    assert ok, outcomes
    assert lab.marker().fenced_epoch() == 9


def test_ssh_fence_fails_while_the_target_daemon_holds_the_fence_lock(lab: Lab) -> None:
    # A daemon frozen in the middle of starting a resource: fence-self must not stop
    # around it; it gives up (half its ssh timeout: 1 s) and the chain moves on.
    with lab.marker().held(timeout=1.0):
        ok, outcomes = FenceChain([SshFencer(lab.ssh())]).fence(request())
    assert not ok
    assert "daemon is mid-start and holds the fence lock" in outcomes[0].reason
    assert "exited 1" in outcomes[0].reason
    assert lab.service.accepts()
    assert lab.marker().fenced_epoch() is None


def test_ssh_fence_from_an_older_epoch_is_refused_by_a_target_active_at_a_newer_one(
    lab: Lab,
) -> None:
    # The target's daemon serves epoch 7; a fencer that would take epoch 7 (it asks
    # to fence up to 6) is stale: it was frozen while the target took over.
    lab.marker().record_active(7)
    ok, outcomes = FenceChain([SshFencer(lab.ssh())]).fence(request(new_epoch=7))
    assert not ok
    assert outcomes[0].reason.startswith("remote fence-self exited 2: REFUSED: ")
    assert lab.service.accepts()
    assert lab.marker().fenced_epoch() is None
    # The next epoch's fencer is legitimate.
    ok, outcomes = FenceChain([SshFencer(lab.ssh())]).fence(request(new_epoch=8))
    assert ok, outcomes
    assert not lab.service.accepts()


# ---------------------------------------------------------------------------
# ssh: host keys
# ---------------------------------------------------------------------------


def test_ssh_fence_refuses_an_unknown_host_key_and_runs_nothing(lab: Lab, tmp_path: Path) -> None:
    other = tmp_path / "other_host_key"
    kind, key = keygen(other, "someone-else").split()[:2]
    lab.known_hosts.write_text(f"[127.0.0.1]:{free_port()} {kind} {key}\n")  # another port

    ok, outcomes = FenceChain([SshFencer(lab.ssh())]).fence(request())

    assert not ok
    reason = outcomes[0].reason
    assert f"host key for [127.0.0.1]:{lab.sshd.port} not in {lab.known_hosts}" in reason
    assert "SHA256:" in reason  # names what was offered, for checking by hand
    assert lab.service.accepts()
    assert lab.marker().fenced_epoch() is None
    assert "Accepted publickey" not in lab.sshd.log()


def test_ssh_fence_refuses_a_changed_host_key(lab: Lab, tmp_path: Path) -> None:
    kind, key = keygen(tmp_path / "impostor_key", "impostor").split()[:2]
    lab.known_hosts.write_text(f"[127.0.0.1]:{lab.sshd.port} {kind} {key}\n")

    ok, outcomes = FenceChain([SshFencer(lab.ssh())]).fence(request())

    assert not ok
    assert outcomes[0].reason.startswith(f"host key CHANGED for [127.0.0.1]:{lab.sshd.port}")
    assert lab.service.accepts()
    assert lab.marker().fenced_epoch() is None
    assert "Accepted publickey" not in lab.sshd.log()


def test_ssh_fence_ignores_user_known_hosts(lab: Lab, tmp_path: Path) -> None:
    # Only the configured file counts: an empty one refuses even a server whose key
    # the user's ~/.ssh/known_hosts might know.
    lab.known_hosts.write_text("")
    ok, outcomes = FenceChain([SshFencer(lab.ssh())]).fence(request())
    assert not ok
    assert "not in" in outcomes[0].reason


# ---------------------------------------------------------------------------
# ssh: unreachable targets end within the timeout
# ---------------------------------------------------------------------------


def test_ssh_fence_to_a_closed_port_fails_fast(lab: Lab) -> None:
    ok, outcomes = FenceChain([SshFencer(lab.ssh(port=free_port()))]).fence(request())
    assert not ok
    assert "refused" in outcomes[0].reason
    assert outcomes[0].took < 0.5


def test_ssh_fence_to_a_silent_target_ends_at_the_timeout() -> None:
    # The kernel completes the TCP handshake from the backlog, but no SSH banner ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        cfg = SshFencerConfig(
            user="root", key_file="/dev/null", known_hosts="/dev/null", port=port, timeout=1.0
        )
        ok, outcomes = FenceChain([SshFencer(cfg)]).fence(request())
    assert not ok
    assert "within 1s" in outcomes[0].reason, outcomes[0].reason
    assert 0.9 <= outcomes[0].took < 1.6


@pytest.fixture
def dropped_port() -> Iterator[int]:
    """A loopback port whose SYNs are silently dropped (a partitioned target)."""
    port = free_port()
    rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
    rule += ["-m", "comment", "--comment", "failoverd-test-fencing"]
    added = subprocess.run(["iptables", "-I", *rule], capture_output=True, check=False)
    if added.returncode != 0:
        pytest.skip(f"iptables unavailable: {added.stderr.decode().strip()}")
    try:
        yield port
    finally:
        subprocess.run(["iptables", "-D", *rule], capture_output=True, check=False)


def test_ssh_fence_to_a_dropping_firewall_ends_at_the_timeout(lab: Lab, dropped_port: int) -> None:
    ok, outcomes = FenceChain(
        [SshFencer(lab.ssh(port=dropped_port, timeout=1.0, connect_timeout=1.0))]
    ).fence(request())
    assert not ok
    want = f"no answer from [127.0.0.1]:{dropped_port} within 1s (connect_timeout)"
    assert outcomes[0].reason == want
    assert 0.9 <= outcomes[0].took < 1.6


def test_ssh_connect_timeout_ends_an_unanswered_fence_before_the_command_timeout(
    lab: Lab, dropped_port: int
) -> None:
    # A powered-off peer: the chain moves on to the next method after connect_timeout,
    # not after the whole timeout (which also covers the remote stop).
    cfg = lab.ssh(port=dropped_port, timeout=5.0, connect_timeout=0.5)
    ok, outcomes = FenceChain([SshFencer(cfg)]).fence(request())
    assert not ok
    assert "within 0.5s (connect_timeout)" in outcomes[0].reason, outcomes[0].reason
    assert 0.4 <= outcomes[0].took < 1.2


# ---------------------------------------------------------------------------
# ssh: the remote side did not really stop
# ---------------------------------------------------------------------------


def test_ssh_fence_fails_when_the_remote_command_fails(lab: Lab) -> None:
    lab.force("echo 'postfix: stop timed out' >&2; exit 1")
    ok, outcomes = FenceChain([SshFencer(lab.ssh())]).fence(request())
    assert not ok
    assert outcomes[0].reason == "remote fence-self exited 1: postfix: stop timed out"


def test_ssh_fence_fails_when_the_port_still_accepts_after_a_clean_exit(lab: Lab) -> None:
    lab.force("true")  # claims success, stops nothing
    ok, outcomes = FenceChain([SshFencer(lab.ssh(timeout=2.0))]).fence(request())
    assert not ok
    assert outcomes[0].reason == (
        f"port {lab.service.port} on mail2 still accepts connections after fence"
    )
    assert outcomes[0].took < 2.5


def test_ssh_fence_fails_when_the_remote_command_hangs(lab: Lab, tmp_path: Path) -> None:
    pidfile = tmp_path / "hung.pid"
    lab.force(f"echo $$ > {pidfile}; exec sleep 30")
    try:
        ok, outcomes = FenceChain([SshFencer(lab.ssh(timeout=1.0))]).fence(request())
    finally:
        # sshd leaves a command running when its client goes away: clean up ours.
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert not ok
    assert "did not finish within 1s" in outcomes[0].reason
    assert outcomes[0].took < 1.6


# ---------------------------------------------------------------------------
# the chain
# ---------------------------------------------------------------------------


def test_chain_falls_back_from_ssh_to_command(lab: Lab, tmp_path: Path) -> None:
    seen = tmp_path / "power-off.json"
    script = (
        "import json, os, sys; json.dump([sys.argv[1:], dict(os.environ)], open(sys.argv[1], 'w'))"
    )
    power = CommandFencerConfig(argv=(PY, "-c", script, str(seen), "{node}", "{epoch}"))
    chain = build_fence_chain(config(lab.ssh(port=free_port()), power))

    ok, outcomes = chain.fence(request(new_epoch=7))

    assert ok
    assert [(o.method, o.ok) for o in outcomes] == [("ssh", False), ("command", True)]
    args, env = json.loads(seen.read_text())
    assert args == [str(seen), "mail2", "7"]
    assert env["FAILOVERD_TARGET"] == "mail2" and env["FAILOVERD_EPOCH"] == "7"
    assert env["PATH"] == os.environ["PATH"]


def test_chain_fails_with_every_methods_reason_when_every_method_fails(lab: Lab) -> None:
    broken_pdu = CommandFencerConfig(argv=(PY, "-c", "print('PDU 3 unreachable'); exit(3)"))
    chain = build_fence_chain(config(lab.ssh(port=free_port()), broken_pdu))

    ok, outcomes = chain.fence(request())

    assert not ok
    assert [o.method for o in outcomes] == ["ssh", "command"]
    assert "refused" in outcomes[0].reason
    assert outcomes[1].reason == f"{PY} exited 3: PDU 3 unreachable"
    assert lab.service.accepts()


def test_command_fencer_kills_its_process_group_at_the_timeout(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    script = f"sleep 30 & echo $! > {child_pid}; wait"
    fencer = CommandFencer(CommandFencerConfig(argv=("sh", "-c", script), timeout=0.5))
    o = fencer.fence(request())
    assert not o.ok and o.reason == "sh did not finish within 0.5s (killed)"
    # Far below the child's 30 s: the fencer ended at its timeout, not when the child did
    # (slack for a loaded 2-core CI machine).
    assert o.took < 5.0
    # SIGKILL went to the whole group when the fencer gave up; the child dies when the
    # kernel next schedules it, which on a loaded 2-core machine can be a moment later
    # (seen once in a full run: still alive right after the fencer returned).
    child = int(child_pid.read_text())
    deadline = time.monotonic() + 2.0
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan may wait a while for PID 1 to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_lease_wait_waits_out_session_watchdog_and_margin_from_lock_loss() -> None:
    # mail2 published a device armed with a timeout no longer than the 0.3 s waited out
    # (tests/integration/test_fencing_lease.py: what it refuses).
    published = PublishedWatchdogs()
    status = MemberStatus("mail2", "active", True, 6, "x", "127.0.0.1", False, "r", "t")
    published.saw({"mail2": replace(status, watchdog=WatchdogStatus(True, 0.3))})
    chain = build_fence_chain(
        config(
            LeaseWaitFencerConfig(), watchdog=WatchdogConfig(device="/dev/watchdog", timeout=0.3)
        ),
        published,
    )
    # 0.2 + 0.3 + 0.05 = 0.55 s after the lock was seen gone; 0.25 s of it already passed.
    req = replace(request(), lock_free_since=time.monotonic() - 0.25)
    t0 = time.monotonic()
    ok, outcomes = chain.fence(req)
    assert ok and outcomes[0].method == "lease-wait"
    assert 0.25 <= time.monotonic() - t0 < 0.45
    (checked,) = chain.check(TARGET)
    assert checked.result == "OK"  # verified: mail2 published its device armed
    assert checked.reason == (
        "mail2 published an armed watchdog device (timeout 0.3s); would wait 0.55s"
    )


def test_lease_wait_without_a_watchdog_never_succeeds() -> None:
    chain = build_fence_chain(config(LeaseWaitFencerConfig()))
    ok, outcomes = chain.fence(request())
    assert not ok and "needs a watchdog" in outcomes[0].reason


# ---------------------------------------------------------------------------
# check(): the dry run behind `failoverctl fence-check`
# ---------------------------------------------------------------------------


def test_check_tells_wrong_host_key_refused_connection_and_working_path_apart(
    lab: Lab, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong_known_hosts"
    kind, key = keygen(tmp_path / "impostor_key", "impostor").split()[:2]
    wrong.write_text(f"[127.0.0.1]:{lab.sshd.port} {kind} {key}\n")
    chain = build_fence_chain(
        config(
            lab.ssh(known_hosts=str(wrong)),
            lab.ssh(port=free_port()),
            lab.ssh(),
            CommandFencerConfig(argv=("/nonexistent/pdu-off", "{node}")),
            CommandFencerConfig(argv=("true", "{node}", "{address}")),
        )
    )
    before = sorted(p.name for p in lab.state_dir.parent.iterdir())

    outcomes = chain.check(TARGET)

    assert [o.result for o in outcomes] == ["FAIL", "FAIL", "OK", "FAIL", "UNVERIFIED"]
    assert "host key CHANGED" in outcomes[0].reason
    assert "refused" in outcomes[1].reason
    assert outcomes[2].reason.startswith(
        "connected and authenticated; remote dry run: mail2 can be fenced (would stop "
    )
    assert outcomes[2].reason.endswith("; marker none)")
    assert "not an executable program" in outcomes[3].reason
    # Without check_argv nothing asked the power switch: not verified, and it says so.
    assert outcomes[4].reason.startswith("not verified: no check_argv is configured")
    assert outcomes[4].reason.endswith("(would run: true mail2 127.0.0.1)")
    # A dry run changes nothing: the service runs, no marker, no lock file, no state dir.
    assert lab.service.accepts()
    assert not lab.state_dir.exists()
    assert sorted(p.name for p in lab.state_dir.parent.iterdir()) == before


def test_check_reports_a_remote_dry_run_that_fails(lab: Lab) -> None:
    lab.state_dir.parent.joinpath("mail2.yaml").write_text("cluster: [broken\n")
    (o,) = FenceChain([SshFencer(lab.ssh())]).check(TARGET)
    assert not o.ok
    assert o.reason.startswith("connected and authenticated, but remote dry run exited 2")


def test_ssh_fence_connection_neither_holds_back_nor_delays_acknowledgements(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sshd's small unanswered messages wait for our ACK (Nagle), which Linux delays by
    # up to 40 ms: ~90 ms of every fence went there (sshfence.low_latency). The socket
    # paramiko logs in and fences with must have Nagle off and acknowledge at once.
    import paramiko

    seen: dict[str, int] = {}
    real = paramiko.SSHClient.connect

    def connect(self: paramiko.SSHClient, *args: object, **kw: object) -> None:
        sock = kw["sock"]
        assert isinstance(sock, socket.socket)
        real(self, *args, **kw)  # type: ignore[arg-type]
        seen["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        # Not sticky in the kernel: 1 here means it was re-armed after the login's reads.
        seen["quickack"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)

    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    ok, outcomes = FenceChain([SshFencer(lab.ssh())]).fence(request())
    assert ok, outcomes
    assert not lab.service.accepts()
    assert seen == {"nodelay": 1, "quickack": 1}
