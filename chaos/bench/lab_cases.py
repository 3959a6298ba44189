"""The benchmark's failoverd cases, in the chaos lab.

One lab (chaos/lab/network.py, chaos/lab/cluster.py: three ZooKeeper servers, two mail
nodes with failoverd, sshd and the SMTP service, a client sending a message to
the VIP every 50 ms) runs the cases one after another. Each repetition: wait
until the cluster is ready (one node serves, the VIP answers, `failoverctl
status` shows the other daemon as a connected, healthy standby), inject the
fault on whichever node is active, wait for the standby to serve (or hold),
heal, repair (restart a killed daemon, power a node back on). chaos/bench/slices.py
then judges each case's slice of the recorded history.

With `mail="postfix"` the nodes are the real mail node (chaos/lab/postfix_node.py:
the ext4 store, the VIP, Postfix, Dovecot), as `python -m chaos run --mail postfix`
builds them; at the end the mailboxes are read over IMAP and the store is checked
with e2fsck (chaos/judge/readback.py), and lost mail is judged against what was
delivered.
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

from chaos.bench.common import log, sample, wait_until
from chaos.bench.slices import CaseResult, judge_run
from chaos.faults import nemesis
from chaos.faults.scenario import Ctx
from chaos.judge import readback
from chaos.lab import netns
from chaos.lab.cluster import Cluster
from chaos.lab.network import Lab
from chaos.lab.nodes import SESSION_TIMEOUT
from chaos.layout import MAIL_HOSTS
from chaos.records import append_event
from chaos.repetition import signals_raise

LAB_T = float(SESSION_TIMEOUT.rstrip("s"))  # the lab's ZooKeeper session timeout
START_TIMEOUT = 45.0
WARMUP = 2.0
# The old active's switchover back-off ends once the target holds the lease
# (failoverd/node/switchover.py), so switchovers may follow each other at once; a
# second lets the client see the new active before the next one.
SWITCHOVER_SPACING = 1.0
PLANNED = frozenset({"switchover", "switchover-any"})
# The real mail node's processes a crash kills: Postfix's (master, smtpd, ...) and Dovecot's.
MAIL_PROGRAMS = ("/usr/lib/postfix/sbin/", "/usr/sbin/dovecot", "/usr/lib/dovecot/")


# -- faults -------------------------------------------------------------------------------


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def kill_service(run_dir: Path, node: str) -> None:
    """SIGKILL the node's SMTP service and record its end once it is gone, as the
    power switch does: a killed service cannot write `service_down` itself."""
    try:
        pid = int((run_dir / node / "service.pid").read_text().strip())
        if b"chaos.services.toy_smtp" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_until(lambda: not _running(pid), 5, 0.01)
    event = {"event": "service_down", "node": node, "t": time.time(), "pid": pid, "by": "crash"}
    append_event(run_dir / "events" / f"{node}-service.jsonl", event)


def kill_mail(c: Cluster, node: str) -> None:
    """SIGKILL the real mail node's Postfix and Dovecot (every process of theirs on the
    node) and record the service's end once they are gone. The store stays mounted,
    as it would on a machine whose services crashed: fencing must unmount it."""
    mine: list[int] = []
    for pid in netns.pids(c.lab.ns(node)):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if exe.startswith(MAIL_PROGRAMS):
            mine.append(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if not mine:
        return
    wait_until(lambda: not any(_running(p) for p in mine), 5, 0.01)
    event = {"event": "service_down", "node": node, "t": time.time(), "by": "crash"}
    append_event(c.run_dir / "events" / f"{node}-service.jsonl", event)


def crash(c: Cluster, node: str) -> nemesis.Heal:
    """The active's daemon and service die at once; the machine (and sshd) stay up."""
    c.nodes[node].signal_daemon(signal.SIGKILL)
    if c.mail:
        kill_mail(c, node)
    else:
        kill_service(c.run_dir, node)
    return nemesis.nothing


def switchover_to_standby(c: Cluster, node: str) -> nemesis.Heal:
    """`failoverctl switchover --to <standby>`, as the install guide does it."""
    target = next(n for n in MAIL_HOSTS if n != node)
    p = c.nodes[node].ctl("switchover", "--to", target)
    out = (p.stdout + p.stderr)[-400:]
    c.lab.record("switchover_requested", node=node, to=target, exit=p.returncode, output=out)
    if p.returncode != 0:
        raise RuntimeError(f"failoverctl switchover exited {p.returncode}: {out.strip()}")
    return nemesis.nothing


def switchover_untargeted(c: Cluster, node: str) -> nemesis.Heal:
    """`failoverctl switchover` without --to: failoverctl picks the standby."""
    p = c.nodes[node].ctl("switchover")
    out = (p.stdout + p.stderr)[-400:]
    c.lab.record("switchover_requested", node=node, to=None, exit=p.returncode, output=out)
    if p.returncode != 0:
        raise RuntimeError(f"failoverctl switchover exited {p.returncode}: {out.strip()}")
    return nemesis.nothing


@dataclass(frozen=True)
class Plan:
    """How one repetition of a case goes."""

    fault: Callable[[Cluster, str], nemesis.Heal]
    failover: bool  # wait for the standby to serve (then `after`), else hold for `hold`
    hold: float
    spacing: float = 0.0  # minimum seconds between two fault starts of this case


PLANS: dict[str, Plan] = {
    "crash": Plan(crash, True, 25.0),
    "power-off": Plan(nemesis.power_off, True, 30.0),
    "cut-zookeeper": Plan(nemesis.cut_from_zookeeper, True, 25.0),
    "isolate": Plan(nemesis.isolate, True, 25.0),
    "zk-minority": Plan(nemesis.zk_minority, True, 25.0),
    "switchover": Plan(switchover_to_standby, True, 20.0, SWITCHOVER_SPACING),
    "switchover-any": Plan(switchover_untargeted, True, 20.0, SWITCHOVER_SPACING),
    "kill-daemon": Plan(nemesis.kill_daemon, True, 25.0),
    "cut-peer-link": Plan(lambda c, _n: nemesis.cut_peer_link(c), False, 8.0),
}


def start_client(c: Cluster) -> None:
    """Cluster.start_client, without the client's default 600 s limit: a benchmark
    lab runs for up to half an hour and must be watched all that time."""
    c.lab.record("observation_start")
    argv = [sys.executable, "-m", "chaos.services.client", "--out", str(c.run_dir / "client.jsonl")]
    argv += ["--interval", "0.05", "--timeout", "3.0", "--duration", "86400"]
    with open(c.run_dir / "client.log", "ab") as out:
        c.client = subprocess.Popen(
            netns.exec_argv(c.lab.ns("client"), argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


# -- readiness ----------------------------------------------------------------------------


def ensemble_whole(c: Cluster) -> bool:
    """A leader and two followers. A server cut off by the previous fault may take
    seconds to rejoin after the heal (its quorum connections wait out TCP
    retransmission back-off): a fault injected meanwhile cuts a second server,
    which is another case (measured: 10.5 s outages, no quorum at all)."""
    return sorted(str(s.mode()) for s in c.zk.values()) == ["follower", "follower", "leader"]


def cluster_ready(c: Cluster, timeout: float) -> str | None:
    """The active's name once one node serves, the VIP answers, the other daemon
    is a connected, healthy standby (so the next fault has someone to fail over to)
    and every ZooKeeper server is back in the quorum."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = c.wait_single_active(max(1.0, deadline - time.monotonic()), stable=0.5)
        if active is None:
            return None
        try:
            p = c.nodes[active].ctl("status", "--json", timeout=10)
            st = json.loads(p.stdout)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            st = {}
        roles = {m["node"]: m for m in st.get("members", [])}
        s = roles.get(next(n for n in MAIL_HOSTS if n != active), {})
        if (
            ensemble_whole(c)
            and st.get("lease_holder") == active
            and roles.get(active, {}).get("role") == "active"
            and s.get("role") == "standby"
            and s.get("healthy")
            and s.get("connected")
        ):
            return active
        time.sleep(0.3)
    return None


# -- one lab, several cases -----------------------------------------------------------------


def _run_case(c: Cluster, result: CaseResult, reps: int, seed: int) -> None:
    plan = PLANS[result.key]
    last_start = float("-inf")
    c.lab.record("bench_case", key=result.key, phase="start")
    try:
        for k in range(reps):
            if c.client is None or c.client.poll() is not None:
                raise RuntimeError("the client stopped sending: outages cannot be measured")
            active = cluster_ready(c, 60)
            if active is None:
                raise RuntimeError(f"{result.key} #{k + 1}: the cluster is not ready")
            time.sleep(max(0.0, last_start + plan.spacing - time.monotonic()))
            last_start = time.monotonic()
            x = Ctx(c, random.Random(seed + k), active)
            x.fault(
                f"{result.key} #{k + 1}",
                partial(plan.fault, c, active),
                plan.hold,
                x.failed_over if plan.failover else None,
                after=0.5,
            )
            serving = sorted(c.serving())
            repairs = c.repair()
            result.reps.append(
                {"active_before": active, "serving_after": serving, "repairs": repairs}
            )
            log(f"  {result.key} #{k + 1}: {active} -> {','.join(serving) or 'nobody'}")
        cluster_ready(c, 60)
    finally:
        c.lab.record("bench_case", key=result.key, phase="end")


def _record_daemon_memory(c: Cluster) -> None:
    """RSS of the lab's daemons after every case ran: they have fenced over ssh
    (paramiko loaded), unlike the idle daemons of the footprint part."""
    out = {}
    for name, node in c.nodes.items():
        s = sample(node.daemon.pid) if node.daemon is not None else None
        if s is not None:
            out[name] = {
                "rss_mb": round(s.rss_kb / 1024, 1),
                "rss_anon_mb": round(s.rss_anon_kb / 1024, 1),
            }
    (c.run_dir / "daemons.json").write_text(json.dumps(out, indent=1))


def run_failoverd_cases(
    cases: list[tuple[str, str, int]], run_dir: Path, seed: int, mail: str | None = None
) -> list[CaseResult]:
    """Run (key, title, repetitions) cases in order in one fresh lab; always tear it down.
    `mail="postfix"`: on the real mail node.

    A case that fails (the cluster never got ready again) records its error; the
    remaining cases are skipped with the same error, since the lab is suspect."""
    results = [CaseResult(key, "failoverd", title, run_dir) for key, title, _ in cases]
    lab = Lab.create(run_dir)
    cluster = Cluster(lab, mail=mail)
    try:
        with signals_raise():
            cluster.start_zookeeper()
            cluster.prepare_nodes()
            cluster.start_nodes()
            if cluster_ready(cluster, START_TIMEOUT) is None:
                raise RuntimeError("no ready cluster after start; see mail*/failoverd.log")
            start_client(cluster)
            time.sleep(WARMUP)
            for (_, _, reps), result in zip(cases, results, strict=True):
                log(f"failoverd: {result.key} x{reps}")
                _run_case(cluster, result, reps, seed)
            time.sleep(1.0)
            _record_daemon_memory(cluster)
            (run_dir / "status.json").write_text(cluster.status())
            cluster.stop_client()
            if mail:
                readback.collect(cluster)  # drain the queue, read the mailboxes over IMAP
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
            readback.fsck_store(run_dir)  # after the final unmount
    delivered = mail_verdict(run_dir, results) if mail else None
    judge_run(run_dir, results, with_phases=True, delivered=delivered, planned=PLANNED)
    return results


def mail_verdict(run_dir: Path, results: list[CaseResult]) -> set[int]:
    """The real mail node's verdict of the whole lab run (mail.json): delivered, lost,
    duplicated, the store's e2fsck. A damaged store or unread mailboxes are every
    case's problem (they cannot be told apart by case); lost mail is counted per case."""
    got = readback.judge(run_dir)
    delivered: set[int] = got.pop("delivered_set")
    problems = got.pop("problems")
    (run_dir / "mail.json").write_text(json.dumps({**got, "problems": problems}, indent=1))
    for rule, msg in problems:
        if rule in ("fsck", "mailboxes"):
            for r in results:
                r.error = r.error or f"{rule}: {msg}"
    return delivered
