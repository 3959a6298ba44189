"""A failoverd cluster of real daemons on loopback, for integration tests.

Each node runs `python -m failoverd.main -c NODE.yaml` with a toy SMTP service
(chaos/services/loopback_smtp.py) as its `command` resource. The default fencer is a `command`
that runs the target's own `fence-self` (everything is on one machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaos.records import json_objects
from chaos.services.loopback_smtp import overlaps, read_events, serving_intervals
from failoverd.cli.status import gather_status
from failoverd.config import load_config
from failoverd.zk.coordinator import Coordinator
from tests.support.access import state_dir, write_credential, zk_auth

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll until predicate() is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a log file, one per line; other lines are skipped."""
    return json_objects(path.read_text(errors="replace").splitlines())


@dataclass
class Node:
    name: str
    dir: Path
    config_path: Path
    proc: subprocess.Popen[bytes] | None = None
    # What `python -m` runs: failoverd's own main, or a wrapper around it such as
    # tests/support/fakewatchdog.py (a driver for a file standing in for /dev/watchdog).
    module: str = "failoverd.main"

    @property
    def log_path(self) -> Path:
        return self.dir / "failoverd.log"

    def start(self, env: dict[str, str] | None = None) -> None:
        out = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [PY, "-m", self.module, "-c", str(self.config_path)],
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        out.close()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def events(self) -> list[dict[str, Any]]:
        """The daemon's JSON log lines."""
        return json_lines(self.log_path) if self.log_path.exists() else []


@dataclass
class Cluster:
    root: Path
    zk_hosts: str | dict[str, str]
    names: tuple[str, ...] = ("mail1", "mail2")
    session_timeout: float = 2.0
    cluster: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    health_checks: list[dict[str, Any]] = field(default_factory=list)
    fencing: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    # The default, closed setup: a digest credential for the nodes (zookeeper.auth).
    # False writes `zookeeper.insecure: true` instead (tests of the insecure mode).
    auth: bool = True

    def __post_init__(self) -> None:
        self.service_dir = self.root / "service"
        self.service_dir.mkdir(parents=True, exist_ok=True)
        self.credential_file = self.root / "zk.secret"
        self.credential = write_credential(self.credential_file)
        self.state_dirs = {n: state_dir(self.cluster, n) for n in self.names}
        self.ports = {n: _free_port() for n in self.names}
        for name in self.names:
            d = self.root / name
            d.mkdir(parents=True, exist_ok=True)
            self.nodes[name] = Node(name, d, d / "failoverd.yaml")
        for i, name in enumerate(self.names):
            self.write_config(name, i)

    def hosts_for(self, name: str) -> str:
        return self.zk_hosts if isinstance(self.zk_hosts, str) else self.zk_hosts[name]

    def config_dict(self, name: str, priority: int) -> dict[str, Any]:
        toy = [PY, "-m", "chaos.services.loopback_smtp"]
        svc = ["--name", name, "--dir", str(self.service_dir), "--port", str(self.ports[name])]
        fence_cmd = [PY, "-m", "tests.support.localfence", str(self.root), "{node}"]
        cfg: dict[str, Any] = {
            "cluster": self.cluster,
            "node": {
                "name": name,
                "address": "127.0.0.1",
                "priority": priority,
                # Started together, mail1 must win the first election: a peer never
                # seen counts as preferred for this long. 200 ms was less than the lag
                # of mail1's start behind mail2's on a loaded machine (seen: mail2
                # won, 'mail2' == 'mail1'). Failovers and named switchovers skip it.
                "priority_delay": "1s",
                "state_dir": str(self.state_dirs[name]),
            },
            "peers": {p: {"address": "127.0.0.1"} for p in self.names if p != name},
            "zookeeper": {
                "hosts": self.hosts_for(name),
                "session_timeout": self.session_timeout,
                # The insecure mode's tree is open, and so is its root: it gets one of
                # its own, apart from the closed clusters' /failoverd.
                **(
                    {"auth": zk_auth(self.credential_file)}
                    if self.auth
                    else {"insecure": True, "root": "/failoverd-insecure"}
                ),
            },
            "health": {"interval": "200ms", "rise": 1, "fall": 2, "checks": self.health_checks},
            "resources": [
                {
                    "type": "command",
                    "start": [*toy, "start", *svc],
                    "stop": [*toy, "stop", *svc],
                    "status": [*toy, "status", *svc],
                    "timeout": "10s",
                }
            ],
            "fencing": self.fencing
            if self.fencing is not None
            # check_argv: the fence target is this machine, always there, so its
            # readiness is verified (status counts only a verified standby healthy);
            # `fence-broken` stands for a fence that fails when it runs.
            else [{"type": "command", "argv": fence_cmd, "check_argv": ["true"], "timeout": "10s"}],
            "switchover": {"timeout": "5s"},
            "flap": {"max_failovers": 3, "window": "10m", "backoff": "3s"},
            "log": {"format": "json", "level": "debug"},
        }
        return _merge(cfg, self.extra)

    def write_config(self, name: str, priority: int) -> None:
        path = self.nodes[name].config_path
        path.write_text(yaml.safe_dump(self.config_dict(name, priority), sort_keys=False))

    # -- processes --------------------------------------------------------------

    def edit_config(self, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Change a node's config file in place (the daemon sees it at its next start)."""
        path = self.nodes[name].config_path
        cfg = yaml.safe_load(path.read_text())
        change(cfg)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def start(self, *names: str) -> None:
        for n in names or self.names:
            self.nodes[n].start()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        for name in self.names:  # never leave a toy service behind
            subprocess.run(
                [
                    PY,
                    "-m",
                    "chaos.services.loopback_smtp",
                    "stop",
                    "--name",
                    name,
                    "--dir",
                    str(self.service_dir),
                ],
                cwd=REPO,
                check=False,
            )

    # -- observations ------------------------------------------------------------

    def status(self, via: str | None = None) -> dict[str, Any]:
        config = load_config(str(self.nodes[via or self.names[-1]].config_path))
        coord = Coordinator(config)
        coord.start(timeout=5)
        try:
            return gather_status(config, coord)
        finally:
            coord.close()

    def ctl(
        self, *args: str, via: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run `failoverctl ARGS` as an operator on node `via` (default: the last node)."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "failoverd.cli",
                "-c",
                str(self.nodes[via or self.names[-1]].config_path),
                *args,
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=timeout,
            check=False,
        )

    def active(self, via: str | None = None) -> str | None:
        """The one node that holds the lease and reports itself active, else None."""
        st = self.status(via)
        holder = st["lease_holder"]
        actives = [m["node"] for m in st["members"] if m["role"] == "active"]
        return holder if holder and actives == [holder] else None

    def wait_active(
        self, timeout: float = 30.0, other_than: str | None = None, via: str | None = None
    ) -> str:
        def found() -> str | None:
            a = self.active(via)
            return a if a and a != other_than else None

        return wait_for(found, timeout, f"one active node (other than {other_than})")

    def service_events(self) -> list[dict[str, Any]]:
        return read_events(self.service_dir)

    def serving(self) -> list[tuple[str, float, float]]:
        return serving_intervals(self.service_events(), time.time())

    def assert_never_two_serving(self) -> None:
        both = overlaps(self.serving())
        assert not both, f"two services ran at once: {both}\n{self.service_events()}"

    def dump_logs(self) -> str:
        parts = []
        for node in self.nodes.values():
            text = node.log_path.read_text(errors="replace") if node.log_path.exists() else ""
            parts.append(
                f"--- {node.name} log (last 60 lines)\n" + "\n".join(text.splitlines()[-60:])
            )
        return "\n".join(parts)


def _free_port() -> int:
    from tests.support.zookeeper import free_port

    return free_port()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
