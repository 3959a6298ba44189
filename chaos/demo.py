"""A failover you can watch: ZooKeeper and two failoverd nodes on loopback.

    python -m chaos.demo [--dir DIR] [--installed]

Both nodes offer "mail" on the same service address, 127.0.0.1:2525 (on real
machines this is the VIP). The demo shows who is active, kills the active node's
*daemon* with SIGKILL — its mail service keeps running, as after a crash of
failoverd itself — and shows the standby fence the old service and take over.
Everything it starts is stopped at the end; logs stay in DIR.

--installed runs the nodes with the installed failoverd and failoverctl
(/usr/bin, the Debian package's) instead of this checkout's code: the demo
against the package. The toy mail service and the fencer stay the checkout's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.access import state_dir_for, write_credential, zk_auth
from tests.support.checkout import REPO, use_checkout
from tests.support.zookeeper import ZooKeeperServer, free_port

SERVICE_PORT = 2525
NODES = ("mail1", "mail2")
PY = sys.executable


@dataclass(frozen=True)
class Programs:
    """The failoverd and failoverctl the demo runs, and the environment they get."""

    daemon: list[str]
    ctl: list[str]
    # How the nodes' resource and fencing commands run the checkout's own helpers
    # (the toy mail service, the local fencer).
    helper: list[str]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def checkout(cls) -> Programs:
        return cls([PY, "-m", "failoverd.main"], [PY, "-m", "failoverd.cli"], [PY])

    @classmethod
    def installed(cls, bindir: Path = Path("/usr/bin")) -> Programs:
        # Without PYTHONPATH: with the checkout on it, the installed scripts would
        # import the checkout's failoverd, not their own. The helpers are the
        # checkout's modules, so they get it back explicitly; the local fencer
        # runs the installed `failoverd fence-self` (FAILOVERD_BIN).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        daemon = str(bindir / "failoverd")
        helper = ["/usr/bin/env", f"PYTHONPATH={REPO}", f"FAILOVERD_BIN={daemon}", PY]
        return cls([daemon], [str(bindir / "failoverctl")], helper, env)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def who_answers(port: int = SERVICE_PORT) -> str:
    """The SMTP banner's host name at the service address, or why nobody answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.settimeout(0.5)
            banner = s.recv(200).decode(errors="replace").split()
            s.sendall(b"QUIT\r\n")
            return banner[1] if len(banner) > 1 else "?"
    except OSError as e:
        return f"nobody ({e.strerror or e})"


def node_config(root: Path, zk: str, name: str, priority: int, progs: Programs) -> dict[str, Any]:
    svc = ["--name", name, "--dir", str(root / "service"), "--port", str(SERVICE_PORT)]
    toy = [*progs.helper, "-m", "chaos.services.loopback_smtp"]
    return {
        "cluster": "demo",
        "node": {
            "name": name,
            "address": "127.0.0.1",
            "priority": priority,
            "state_dir": str(state_dir_for(root, name)),
        },
        "peers": {p: {"address": "127.0.0.1"} for p in NODES if p != name},
        # ZooKeeper access as on real machines: the nodes' own digest credential.
        "zookeeper": {"hosts": zk, "session_timeout": "2s", "auth": zk_auth(root / "zk.secret")},
        "health": {
            "interval": "500ms",
            "rise": 2,
            "fall": 3,
            "checks": [
                {"type": "smtp", "host": "127.0.0.1", "port": SERVICE_PORT, "timeout": "1s"}
            ],
        },
        "resources": [
            {
                "type": "command",
                "start": [*toy, "start", *svc],
                "stop": [*toy, "stop", *svc],
                "status": [*toy, "status", *svc],
                "timeout": "10s",
            }
        ],
        # Both nodes are on this machine, so "power fencing" runs the peer's own
        # fence-self; on real machines this is the ssh fencer and a PDU command.
        "fencing": [
            {
                "type": "command",
                "argv": [*progs.helper, "-m", "tests.support.localfence", str(root), "{node}"],
                # The power switch's status action: the peer's fence-self --dry-run.
                "check_argv": [
                    *progs.helper, "-m", "tests.support.localfence", str(root), "{node}", "--check"
                ],
                "timeout": "10s",
            }
        ],
        "log": {"format": "json", "level": "info"},
    }


def ctl(progs: Programs, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*progs.ctl, "-c", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
        env=progs.env,
    )


def status(progs: Programs, config: Path) -> dict[str, Any] | None:
    out = ctl(progs, config, "status", "--json")
    try:
        return json.loads(out.stdout) if out.stdout else None
    except json.JSONDecodeError:
        return None


def active_of(st: dict[str, Any] | None) -> str | None:
    if not st:
        return None
    holder = st["lease_holder"]
    roles = {m["node"]: m["role"] for m in st["members"]}
    return holder if holder and roles.get(holder) == "active" else None


def wait_active(
    progs: Programs, config: Path, timeout: float, other_than: str | None = None
) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        a = active_of(status(progs, config))
        if a and a != other_than:
            return a
        time.sleep(0.2)
    return None


def run(root: Path, progs: Programs) -> int:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    zk = ZooKeeperServer(root / "zookeeper", free_port())
    write_credential(root / "zk.secret")
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    configs = {n: root / n / "failoverd.yaml" for n in NODES}
    try:
        say(f"failoverd: {' '.join(progs.daemon)}, failoverctl: {' '.join(progs.ctl)}")
        say("starting ZooKeeper on loopback")
        zk.start()
        zk.wait_serving()
        for i, name in enumerate(NODES):
            configs[name].parent.mkdir(parents=True)
            configs[name].write_text(yaml.safe_dump(node_config(root, zk.address, name, i, progs)))
        for name in NODES:
            log = open(root / name / "failoverd.log", "ab")  # noqa: SIM115 - owned by the child
            daemons[name] = subprocess.Popen(
                [*progs.daemon, "-c", str(configs[name])],
                env=progs.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            say(f"started failoverd on {name} (log: {root / name / 'failoverd.log'})")
        active = wait_active(progs, configs["mail2"], 30)
        if active is None:
            say("no node became active within 30 s: see the logs")
            return 1
        say(
            f"{active} is active; the mail service at 127.0.0.1:{SERVICE_PORT} is answered by: "
            f"{who_answers()}"
        )
        print(ctl(progs, configs["mail2"], "status").stdout, flush=True)

        standby = next(n for n in NODES if n != active)
        say(
            f"killing failoverd on {active} with SIGKILL: its mail service keeps running, "
            f"so {standby} must fence it before it may start its own"
        )
        killed = time.monotonic()
        os.kill(daemons[active].pid, signal.SIGKILL)
        daemons[active].wait()
        last = ""
        while time.monotonic() - killed < 30:
            now = who_answers()
            st = status(progs, configs[standby])
            roles = ", ".join(f"{m['node']}={m['role']}" for m in st["members"]) if st else "?"
            line = f"service answered by: {now:<28} roles: {roles}"
            if line != last:
                say(f"+{time.monotonic() - killed:4.1f}s  {line}")
                last = line
            if active_of(st) == standby and now == standby:
                break
            time.sleep(0.1)
        else:
            say(f"{standby} did not take over within 30 s: see the logs")
            return 1
        say(
            f"takeover complete in {time.monotonic() - killed:.1f}s "
            f"(session timeout 2 s + fence + start)"
        )
        fence_log = root / "fence-calls.jsonl"
        if fence_log.exists():
            for line in fence_log.read_text().splitlines():
                call = json.loads(line)
                say(
                    f"fence: {call['by']} fenced {call['target']} (epochs <= {call['epoch']}), "
                    f"exit {call['rc']}"
                )
        print(ctl(progs, configs[standby], "status").stdout, flush=True)
        print(ctl(progs, configs[standby], "history", "--limit", "6").stdout, flush=True)
        return 0
    finally:
        for p in daemons.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        for name in NODES:
            subprocess.run(
                [
                    PY,
                    "-m",
                    "chaos.services.loopback_smtp",
                    "stop",
                    "--name",
                    name,
                    "--dir",
                    str(root / "service"),
                ],
                check=False,
            )
        zk.stop()
        say(f"demo stopped; logs are in {root}")


def main(argv: list[str] | None = None) -> int:
    use_checkout()
    p = argparse.ArgumentParser(prog="python -m chaos.demo", description=__doc__.splitlines()[0])
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("demo-run").resolve(),
        help="working directory for logs and state (default ./demo-run)",
    )
    p.add_argument(
        "--installed",
        action="store_true",
        help="run the installed failoverd and failoverctl (/usr/bin) instead of the checkout's",
    )
    args = p.parse_args(argv)
    progs = Programs.installed() if args.installed else Programs.checkout()
    return run(args.dir, progs)


if __name__ == "__main__":
    sys.exit(main())
