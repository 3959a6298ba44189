"""keepalived, the baseline: VRRP between the two mail nodes of the same lab, same faults.

What operators would use instead of failoverd: Debian's keepalived (2.2.7), one
`vrrp_instance` per mail node on the lab bridge (multicast VRRP, advert_int 1),
the same VIP, and `notify_master`/`notify_backup` scripts that start and stop the
lab's SMTP service (chaos/services/toy_smtp.py), so the checker sees service intervals
exactly as it does for failoverd. Both nodes start as BACKUP with `nopreempt`
(mail1 priority 150, mail2 100): like failoverd, no automatic failback.
keepalived has no epochs; the notify script hands the service the wall clock in
milliseconds as FAILOVERD_EPOCH, so writes by an older master after a newer one
took over show up as stale writes.

Each node runs `keepalived -n -l -D -P -f CONF -p PID -r VRRPPID -c CHECKPID`
in its namespace. There is no quorum and no fencing: that is
what the baseline rows show.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from chaos.bench.common import log, wait_until
from chaos.bench.lab_cases import WARMUP, kill_service, start_client
from chaos.bench.slices import CaseResult, judge_run
from chaos.faults import nemesis
from chaos.faults.scenario import Ctx
from chaos.lab import netns
from chaos.lab.cluster import Cluster
from chaos.lab.network import Lab
from chaos.lab.nodes import PATH, MailNode
from chaos.layout import MAIL_HOSTS, PREFIXLEN, VIP
from chaos.repetition import signals_raise
from tests.support.checkout import REPO

PRIORITY = {"mail1": 150, "mail2": 100}
CONF = """global_defs {{
    router_id {node}
    script_user root
}}
vrrp_instance mail {{
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        {vip}/{prefixlen} dev eth0
    }}
    notify_master "{dir}/notify.sh MASTER"
    notify_backup "{dir}/notify.sh BACKUP"
    notify_fault "{dir}/notify.sh FAULT"
    notify_stop "{dir}/notify.sh STOP"
}}
"""
NOTIFY = """#!/bin/sh
# keepalived's notify script on {node}: start/stop the lab's SMTP service.
echo "$1 $(date +%s.%N)" >> {dir}/vrrp-states
# keepalived may run this with a bare environment: the lab is not installed.
export PYTHONPATH={repo}
service="{py} -m chaos.services.toy_smtp"
if [ "$1" = MASTER ]; then
    FAILOVERD_EPOCH=$(date +%s%3N) exec $service start --lab {run} --node {node}
fi
exec $service stop --lab {run} --node {node}
"""


@dataclass
class KeepalivedNode:
    lab: Lab
    name: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def dir(self) -> Path:
        return self.lab.run_dir / self.name

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fields = {"node": self.name, "dir": self.dir, "vip": VIP, "prefixlen": PREFIXLEN}
        (self.dir / "keepalived.conf").write_text(
            CONF.format(priority=PRIORITY[self.name], **fields)
        )
        script = self.dir / "notify.sh"
        script.write_text(
            NOTIFY.format(py=sys.executable, run=self.lab.run_dir, repo=REPO, **fields)
        )
        script.chmod(0o755)

    def start(self) -> None:
        d = self.dir
        argv = ["keepalived", "-n", "-l", "-D", "-P", "-f", str(d / "keepalived.conf")]
        argv += ["-p", str(d / "keepalived.pid"), "-r", str(d / "vrrp.pid")]
        argv += ["-c", str(d / "checkers.pid")]
        with open(d / "keepalived.log", "ab") as out:
            self.proc = subprocess.Popen(
                netns.exec_argv(self.lab.ns(self.name), argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PATH": PATH},
                start_new_session=True,
            )
        self.lab.record("keepalived_started", node=self.name, pid=self.proc.pid)

    def pids(self) -> list[int]:
        out = []
        for f in ("keepalived.pid", "vrrp.pid"):
            with contextlib.suppress(OSError, ValueError):
                out.append(int((self.dir / f).read_text().strip()))
        return out

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def crash(self) -> None:
        """SIGKILL parent and VRRP child. Both are stopped first: a parent that dies
        alone makes the child shut down cleanly (priority 0), and a child that dies
        alone is respawned by the parent. Neither is a crash."""
        pids = self.pids()
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        self.lab.record("keepalived_killed", node=self.name, pids=pids)

    def state(self) -> str | None:
        """The last VRRP state its notify script recorded."""
        try:
            lines = (self.dir / "vrrp-states").read_text().split("\n")
        except OSError:
            return None
        last = [x for x in lines if x.strip()]
        return last[-1].split()[0] if last else None

    def drop_vip(self) -> None:
        """What a reboot or a restart of the crashed node does to the address."""
        netns.sh(
            ["ip", "-n", self.lab.ns(self.name), "addr", "del", f"{VIP}/{PREFIXLEN}"]
            + ["dev", "eth0"],
            check=False,
        )


@dataclass(frozen=True)
class KaPlan:
    fault: Callable[[Cluster, dict[str, KeepalivedNode], str], nemesis.Heal]
    failover: bool  # hold until the other node serves (plus `after`), else for `hold`
    hold: float
    after: float = 0.5


def _crash_all(c: Cluster, ka: dict[str, KeepalivedNode], node: str) -> nemesis.Heal:
    ka[node].crash()
    kill_service(c.run_dir, node)
    return nemesis.nothing


def _crash_keepalived(_c: Cluster, ka: dict[str, KeepalivedNode], node: str) -> nemesis.Heal:
    ka[node].crash()  # the service it started keeps running, like Postfix would
    return nemesis.nothing


KEEPALIVED_PLANS: dict[str, KaPlan] = {
    "ka-crash": KaPlan(_crash_all, True, 25.0),
    # The old node keeps serving next to the new master until someone repairs it:
    # the bench does so 5 s after the takeover.
    "ka-kill-daemon": KaPlan(_crash_keepalived, True, 25.0, after=5.0),
    "ka-cut-peer-link": KaPlan(lambda c, _k, _n: nemesis.cut_peer_link(c), False, 8.0),
}


def _ready(c: Cluster, ka: dict[str, KeepalivedNode], timeout: float) -> str | None:
    """One node serves and the VIP answers, its keepalived is MASTER, the other BACKUP."""

    def ok() -> str | None:
        active = c.wait_single_active(2.0, stable=0.5)
        if active is None:
            return None
        other = next(n for n in MAIL_HOSTS if n != active)
        good = ka[active].state() == "MASTER" and ka[other].state() == "BACKUP"
        return active if good and all(k.alive() for k in ka.values()) else None

    return wait_until(ok, timeout, 0.2)


def _repair(c: Cluster, ka: dict[str, KeepalivedNode]) -> list[str]:
    """Restart a dead keepalived; its node first loses the VIP and any service left over."""
    done = []
    for name, k in ka.items():
        if not k.alive():
            node = c.nodes[name]
            subprocess.run(netns.exec_argv(node.ns, node.service_argv("stop")), capture_output=True)
            k.drop_vip()
            k.start()
            done.append(f"restarted keepalived on {name}")
    return done


def _run_case(
    c: Cluster, ka: dict[str, KeepalivedNode], result: CaseResult, reps: int, cap: float
) -> None:
    plan = KEEPALIVED_PLANS[result.key]
    c.lab.record("bench_case", key=result.key, phase="start")
    try:
        for k in range(reps):
            if c.client is None or c.client.poll() is not None:
                raise RuntimeError("the client stopped sending: outages cannot be measured")
            active = _ready(c, ka, cap)
            rep: dict[str, Any] = {"ready": active is not None}
            active = active or _serving_guess(c)
            x = Ctx(c, random.Random(k), active)
            until = partial(_serves, c, x.standby) if plan.failover else None
            x.fault(
                f"{result.key} #{k + 1}",
                partial(plan.fault, c, ka, active),
                plan.hold,
                until,
                after=plan.after,
            )
            rep.update(active_before=active, serving_after=sorted(c.serving()))
            rep["repairs"] = _repair(c, ka)
            result.reps.append(rep)
            log(f"  {result.key} #{k + 1}: {active} -> {','.join(rep['serving_after'])}")
        if _ready(c, ka, cap) is None:
            log(f"  {result.key}: no single reachable master {cap:.0f}s after the last repair")
    finally:
        c.lab.record("bench_case", key=result.key, phase="end")


def run_keepalived_cases(
    cases: list[tuple[str, str, int]], run_dir: Path, recover_cap: float
) -> list[CaseResult]:
    """Run (key, title, repetitions) cases in one fresh lab with keepalived instead of
    failoverd (no ZooKeeper, no sshd); always tear it down. `recover_cap` bounds the
    wait for the VIP to answer again before the next repetition."""
    results = [CaseResult(key, "keepalived", title, run_dir) for key, title, _ in cases]
    lab = Lab.create(run_dir)
    cluster = Cluster(lab)
    ka: dict[str, KeepalivedNode] = {}
    try:
        with signals_raise():
            for d in ("store", "flags", "events"):
                (run_dir / d).mkdir(parents=True, exist_ok=True)
            for prio, name in enumerate(MAIL_HOSTS):
                cluster.nodes[name] = MailNode(lab, name, prio)
                ka[name] = KeepalivedNode(lab, name)
                ka[name].prepare()
            for k in ka.values():
                k.start()
            if _ready(cluster, ka, 30) is None:
                raise RuntimeError("keepalived: no single master after start; see */keepalived.log")
            start_client(cluster)
            time.sleep(WARMUP)
            for (_, _, reps), result in zip(cases, results, strict=True):
                log(f"keepalived: {result.key} x{reps}")
                _run_case(cluster, ka, result, reps, recover_cap)
            time.sleep(1.0)
            cluster.stop_client()
    except BaseException as e:  # noqa: BLE001 - Ctrl-C too: record, tear down, re-raise
        error = "".join(traceback.format_exception_only(type(e), e)).strip()
        (run_dir / "error.txt").write_text(traceback.format_exc())
        for r in results:
            if r.error is None and len(r.reps) < dict((k, n) for k, _, n in cases)[r.key]:
                r.error = error
        if isinstance(e, KeyboardInterrupt):
            cluster.teardown()
            raise
    finally:
        cluster.teardown()
    judge_run(run_dir, results, with_phases=False)
    return results


def _serves(c: Cluster, node: str) -> bool:
    return node in c.serving()


def _serving_guess(c: Cluster) -> str:
    s = sorted(c.serving())
    return s[0] if s else MAIL_HOSTS[0]
