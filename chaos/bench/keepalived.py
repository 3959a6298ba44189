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

On the real mail node (`mail="postfix"`) the baseline is a typical keepalived mail
pair: the same two machines as failoverd's (chaos/lab/postfix_node.py: the node's
own loop device onto the shared ext4 store, Postfix and Dovecot listening on the
VIP), and notify scripts that do what such a pair's scripts do: on MASTER mount the
store (`mount`), start Postfix, start Dovecot; on BACKUP, FAULT and STOP stop
Dovecot, stop Postfix, unmount. Postfix and Dovecot are started and stopped by the
same commands failoverd's resources run (chaos/services/postfix.py), so the rows
differ only in what decides and orders the takeover. Its cases there:

* ka-crash: the master machine dies (the lab's power-off): keepalived, Postfix and
  Dovecot with it, and its mount; the backup takes over after 3 x advert_int.
  (Killing keepalived and the services but leaving the machine up would leave the
  store mounted on the old master while the new one mounts it: without fencing,
  a double mount, which would damage the store for every later repetition.)
* ka-switchover: the planned handover of such a pair, done with care: the master's
  STOP script by hand (Dovecot, Postfix stopped, store unmounted), then `systemctl
  stop keepalived` (SIGTERM: it sends priority 0 and the backup takes over at once),
  timed from the first command, as failoverd's switchover is. keepalived's own STOP
  script alone is not enough: measured with keepalived 2.2.7, after its SIGTERM
  alone (it exited within ~1 s) the old master's Postfix was still running beside
  the new master, on a store mounted twice (2 overlaps, lost mail, e2fsck errors).
  In the toy lab, ka-switchover is the SIGTERM alone.
"""

from __future__ import annotations

import contextlib
import json
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
from chaos.judge import readback
from chaos.lab import netns, store_image
from chaos.lab.cluster import Cluster
from chaos.lab.network import Lab
from chaos.lab.nodes import PATH, MailNode
from chaos.lab.store_image import loop_device
from chaos.layout import MAIL_HOSTS, PREFIXLEN, VIP, mount_dir
from chaos.repetition import signals_raise
from chaos.services import postfix
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
NOTIFY_MAIL = """#!/bin/sh
# keepalived's notify script on {node}: what a keepalived mail pair's script does.
echo "$1 $(date +%s.%N)" >> {dir}/vrrp-states
# keepalived runs its scripts with umask 077: Postfix's queue would be root's alone.
umask 022
export PYTHONPATH={repo}
service="{py} -m chaos.services.postfix"
if [ "$1" = MASTER ]; then
    mkdir -p {store}
    mountpoint -q {store} || mount -t ext4 {device} {store} || exit 1
    export FAILOVERD_EPOCH=$(date +%s%3N)
    $service start postfix --lab {run} --node {node} || exit 1
    exec $service start dovecot --lab {run} --node {node}
fi
$service stop dovecot --lab {run} --node {node}
$service stop postfix --lab {run} --node {node}
! mountpoint -q {store} || umount {store}
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
    machine: MailNode | None = None  # the real mail node: keepalived runs inside it

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
        if self.machine is not None:
            run = self.lab.run_dir
            text = NOTIFY_MAIL.format(
                py=sys.executable,
                run=run,
                repo=REPO,
                store=mount_dir(run),
                device=loop_device(run, self.name),
                **fields,
            )
        else:
            text = NOTIFY.format(py=sys.executable, run=self.lab.run_dir, repo=REPO, **fields)
        script.write_text(text)
        script.chmod(0o755)

    def start(self) -> None:
        d = self.dir
        argv = ["keepalived", "-n", "-l", "-D", "-P", "-f", str(d / "keepalived.conf")]
        argv += ["-p", str(d / "keepalived.pid"), "-r", str(d / "vrrp.pid")]
        argv += ["-c", str(d / "checkers.pid")]
        if self.machine is not None:  # its scripts mount the store in the node's namespace
            wrapped = self.machine.machine_argv(argv)
        else:
            wrapped = netns.exec_argv(self.lab.ns(self.name), argv)
        with open(d / "keepalived.log", "ab") as out:
            self.proc = subprocess.Popen(
                wrapped,
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

    def stop(self) -> None:
        """`systemctl stop keepalived`: SIGTERM, so it sends priority 0 and runs STOP.
        On the real mail node the STOP script runs first, to its end (see above)."""
        if self.machine is not None:
            argv = self.machine.machine_argv([str(self.dir / "notify.sh"), "STOP"])
            subprocess.run(argv, capture_output=True, timeout=60)
        pids = self.pids()
        if pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids[0], signal.SIGTERM)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        self.lab.record("keepalived_stopped", node=self.name, pids=pids)

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


def _power_off(c: Cluster, _ka: dict[str, KeepalivedNode], node: str) -> nemesis.Heal:
    return nemesis.power_off(c, node)


def _stop_keepalived(_c: Cluster, ka: dict[str, KeepalivedNode], node: str) -> nemesis.Heal:
    ka[node].stop()
    return nemesis.nothing


# The real mail node's cases (see the module's docstring).
MAIL_PLANS: dict[str, KaPlan] = {
    "ka-crash": KaPlan(_power_off, True, 30.0),
    "ka-switchover": KaPlan(_stop_keepalived, True, 20.0),
}

KEEPALIVED_PLANS: dict[str, KaPlan] = {
    "ka-crash": KaPlan(_crash_all, True, 25.0),
    # The old node keeps serving next to the new master until someone repairs it:
    # the bench does so 5 s after the takeover.
    "ka-kill-daemon": KaPlan(_crash_keepalived, True, 25.0, after=5.0),
    "ka-cut-peer-link": KaPlan(lambda c, _k, _n: nemesis.cut_peer_link(c), False, 8.0),
    "ka-switchover": KaPlan(_stop_keepalived, True, 20.0),
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
        if k.machine is not None and c.lab.is_powered_off(name):
            k.machine.reap()
            c.lab.power_on(name)  # a rebooted machine: no VIP, no mount, nothing running
            k.start()
            done.append(f"powered on {name}, started keepalived")
        elif not k.alive():
            node = c.nodes[name]
            if k.machine is None:
                subprocess.run(
                    netns.exec_argv(node.ns, node.service_argv("stop")), capture_output=True
                )
            k.drop_vip()
            k.start()
            done.append(f"restarted keepalived on {name}")
    return done


def _run_case(
    c: Cluster, ka: dict[str, KeepalivedNode], result: CaseResult, reps: int, cap: float
) -> None:
    plan = (MAIL_PLANS if c.mail else KEEPALIVED_PLANS)[result.key]
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
    cases: list[tuple[str, str, int]], run_dir: Path, recover_cap: float, mail: str | None = None
) -> list[CaseResult]:
    """Run (key, title, repetitions) cases in one fresh lab with keepalived instead of
    failoverd (no ZooKeeper, no sshd); always tear it down. `recover_cap` bounds the
    wait for the VIP to answer again before the next repetition. `mail="postfix"`:
    on the real mail node (see the module's docstring)."""
    results = [CaseResult(key, "keepalived", title, run_dir) for key, title, _ in cases]
    lab = Lab.create(run_dir)
    cluster = Cluster(lab, mail=mail)
    ka: dict[str, KeepalivedNode] = {}
    try:
        with signals_raise():
            for d in ("store", "flags", "events"):
                (run_dir / d).mkdir(parents=True, exist_ok=True)
            if mail:
                store_image.create(lab)
                postfix.prepare_cluster(run_dir, mail)
            for prio, name in enumerate(MAIL_HOSTS):
                cluster.nodes[name] = MailNode(lab, name, prio, mail=mail)
                if mail:
                    postfix.prepare_node(run_dir, name)
                ka[name] = KeepalivedNode(lab, name, machine=cluster.nodes[name] if mail else None)
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
            if mail:
                readback.collect(cluster)
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
        if mail:
            readback.fsck_store(run_dir)
    delivered = None
    if mail:
        # Without fencing a takeover may mount the store twice: the damage is what
        # the baseline shows (mail.json), not an error of the benchmark.
        got = readback.judge(run_dir)
        delivered = got.pop("delivered_set")
        (run_dir / "mail.json").write_text(json.dumps(got, indent=1))
    judge_run(run_dir, results, with_phases=False, delivered=delivered)
    return results


def _serves(c: Cluster, node: str) -> bool:
    return node in c.serving()


def _serving_guess(c: Cluster) -> str:
    s = sorted(c.serving())
    return s[0] if s else MAIL_HOSTS[0]
