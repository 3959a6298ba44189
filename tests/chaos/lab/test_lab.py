"""The lab itself, without failoverd: network, faults, ensemble, service, client, teardown.

These prove the instrument before it is used to judge the daemon: partitions
really cut traffic (and only what they should), the power switch really kills a
node, the service and client record what the checker reads, and no namespace
survives a crash of the runner once `python -m chaos cleanup` ran.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.judge.checker import check
from chaos.judge.history import Expectation, load_history
from chaos.lab import netns
from chaos.lab.cluster import Cluster
from chaos.lab.network import Lab
from chaos.layout import REGISTRY, VIP, address
from tests.chaos.conftest import lab_namespaces

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab.create(tmp_path / "run")
    yield lab
    lab.teardown()
    assert not [n for n in lab_namespaces(lab.prefix + "-")]


def tcp(lab: Lab, src: str, dst: str, port: int, timeout: float = 1.0) -> str:
    try:
        with netns.inside(lab.ns(src)):
            s = socket.create_connection((address(dst), port), timeout=timeout)
        s.close()
        return "ok"
    except TimeoutError:
        return "timeout"
    except OSError as e:
        return f"errno {e.errno}"


@pytest.fixture
def listeners(lab: Lab) -> Iterator[None]:
    procs = [
        subprocess.Popen(netns.exec_argv(lab.ns(h), ["nc", "-lk", "-p", "7000"]))
        for h in ("mail1", "mail2", "zk1")
    ]
    time.sleep(0.3)
    yield
    for p in procs:
        p.kill()
        p.wait()


def test_lab_addresses_exist_only_inside_the_lab(lab: Lab) -> None:
    root = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert "198.51.100." not in root
    assert not any(lab.ns("br") in line for line in root.splitlines())
    inside = netns.run_in(lab.ns("mail1"), ["ip", "-o", "addr", "show", "eth0"])
    assert f"{address('mail1')}/24" in inside


@pytest.mark.usefixtures("listeners")
def test_partitions_cut_exactly_the_traffic_they_name(lab: Lab) -> None:
    assert tcp(lab, "mail1", "mail2", 7000) == "ok"
    lab.drop("mail1", ["mail2"])  # two-way, from one side
    assert tcp(lab, "mail1", "mail2", 7000) == "timeout"
    assert tcp(lab, "mail2", "mail1", 7000) == "timeout"
    assert tcp(lab, "mail1", "zk1", 7000) == "ok"
    lab.heal_firewall("mail1")
    lab.drop("mail2", ["mail1"], direction="out", tcp_port=7000)  # one way, one port
    assert tcp(lab, "mail2", "mail1", 7000) == "timeout"
    assert tcp(lab, "mail1", "mail2", 7000) == "ok"
    lab.heal_firewall("mail2")
    assert tcp(lab, "mail2", "mail1", 7000) == "ok"


@pytest.mark.usefixtures("listeners")
def test_a_link_down_fails_fast_and_comes_back(lab: Lab) -> None:
    lab.set_link("mail1", False)
    t = time.monotonic()
    assert tcp(lab, "mail1", "zk1", 7000, timeout=10) == "errno 113"  # no route to host
    assert time.monotonic() - t < 5
    lab.set_link("mail1", True)
    assert tcp(lab, "mail1", "zk1", 7000) == "ok"


@pytest.mark.usefixtures("listeners")
def test_lossy_link_drops_some_but_not_all(lab: Lab) -> None:
    lab.lossy("mail1", 50)
    results = [tcp(lab, "mail1", "zk1", 7000, timeout=0.3) for _ in range(30)]
    lab.heal_firewall("mail1")
    assert 0 < results.count("ok") < 30


def test_power_off_kills_every_process_of_the_node_and_records_it(lab: Lab) -> None:
    procs = [subprocess.Popen(netns.exec_argv(lab.ns("mail2"), ["sleep", "60"])) for _ in range(3)]
    time.sleep(0.2)
    assert lab.power_off("mail2", by="test") == 3
    assert all(p.wait(timeout=5) == -signal.SIGKILL for p in procs)
    assert lab.is_powered_off("mail2")
    [event] = [json.loads(x) for x in lab.events_path.read_text().splitlines()]
    assert (event["event"], event["node"]) == ("power_off", "mail2")
    lab.power_on("mail2")
    assert not lab.is_powered_off("mail2")


def test_power_switch_command_can_be_disabled(lab: Lab) -> None:
    (lab.run_dir / "flags").mkdir()
    (lab.run_dir / "flags" / "power-disabled").touch()
    argv = [sys.executable, "-m", "chaos", "power-off", "--lab", str(lab.run_dir), "mail1"]
    assert subprocess.run(argv, capture_output=True, cwd=REPO).returncode == 1
    (lab.run_dir / "flags" / "power-disabled").unlink()
    assert subprocess.run(argv, capture_output=True, cwd=REPO).returncode == 0
    assert lab.is_powered_off("mail1")


def test_ensemble_service_vip_and_client_by_hand(lab: Lab) -> None:
    """Everything but failoverd: what the daemon would do, done by hand, judged clean."""
    c = Cluster(lab)
    t = c.start_zookeeper()
    assert t < 30
    c.prepare_nodes()
    env = {**os.environ, "FAILOVERD_EPOCH": "1", "FAILOVERD_NODE": "mail1"}
    node = c.nodes["mail1"]
    start = subprocess.run(netns.exec_argv(node.ns, node.service_argv("start")), env=env)
    assert start.returncode == 0
    netns.sh(["ip", "-n", node.ns, "addr", "add", f"{VIP}/24", "dev", "eth0"])
    assert c.wait_single_active(10, stable=0.3) == "mail1"
    c.start_client()
    time.sleep(1.5)
    lab.record("fault_start", fault="none")
    lab.record("fault_heal", fault="none")
    time.sleep(0.5)
    c.stop_client()
    stop = subprocess.run(netns.exec_argv(node.ns, node.service_argv("stop")), env=env)
    assert stop.returncode == 0
    c.teardown()
    verdict = check(load_history(lab.run_dir), Expectation("forbidden", settle=5))
    # The service stopped after observation_end: within the observation it served throughout.
    assert verdict.passed, verdict.violations
    assert verdict.stats["acknowledged"] >= 30


def running(pid: int) -> bool:
    """Alive and not a zombie (orphans are reaped by init a little later)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_cleanup_after_a_crashed_runner_leaves_no_namespace_or_process(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "from pathlib import Path\n"
        "from chaos.lab import netns\n"
        "from chaos.lab.network import Lab\n"
        f"lab = Lab.create(Path({str(tmp_path / 'crash')!r}))\n"
        "for h in ('mail1', 'zk1'):\n"
        "    subprocess.Popen(netns.exec_argv(lab.ns(h), ['sleep', '300']),"
        " start_new_session=True)\n"
        "print(lab.prefix, flush=True)\n"
        "time.sleep(300)\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert runner.stdout is not None
        prefix = runner.stdout.readline().strip()
        assert prefix.startswith("fo")
        deadline = time.monotonic() + 10
        while True:
            victims = netns.pids(f"{prefix}-mail1") + netns.pids(f"{prefix}-zk1")
            if len(victims) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(victims) == 2
    finally:
        runner.kill()  # the runner crashes: no finally of its own, no teardown
        runner.wait()
    assert len(lab_namespaces(prefix + "-")) == 7
    assert (REGISTRY / f"{prefix}.json").exists()
    out = subprocess.run(
        [sys.executable, "-m", "chaos", "cleanup"], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert lab_namespaces(prefix + "-") == []
    assert not (REGISTRY / f"{prefix}.json").exists()
    assert not [p for p in victims if running(p)]
    again = subprocess.run([sys.executable, "-m", "chaos", "cleanup"], cwd=REPO)
    assert again.returncode == 0  # idempotent


def test_interrupted_run_tears_its_lab_down(tmp_path: Path) -> None:
    run = subprocess.Popen(
        [sys.executable, "-m", "chaos", "run", "cut-peer-link", "--out", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    prefix = None
    while prefix is None and time.monotonic() < deadline:
        for reg in REGISTRY.glob("fo*.json") if REGISTRY.exists() else []:
            info = json.loads(reg.read_text())
            if info["runner_pid"] == run.pid and len(lab_namespaces(info["prefix"] + "-")) == 7:
                prefix = info["prefix"]
        time.sleep(0.1)
    assert prefix is not None, "the run never built its lab"
    time.sleep(1.0)  # ZooKeeper is starting: processes exist in the namespaces
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=60)
    assert lab_namespaces(prefix + "-") == [], out
    assert not (REGISTRY / f"{prefix}.json").exists()
