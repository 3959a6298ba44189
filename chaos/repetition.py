"""One repetition of a scenario: a fresh lab, fault, heal, settle, check, always tear down.

Everything of one repetition goes into its own folder (NN-<name>[-rK]/ of a run
folder, chaos/runner.py):
    results.json timeline.png     the verdict, numbers and picture
    scenario.json lab.json        what was run, and on which namespaces
    client.jsonl store/ events/   the recorded history
    mail1/ mail2/ zk1/ ... client.log   logs of every process
A serial run calls run_one in its own process, `run --jobs K` (chaos/parallel.py)
in one forked worker per repetition.
"""

from __future__ import annotations

import json
import random
import resource
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.faults.scenario import Ctx, Scenario
from chaos.judge import readback
from chaos.judge.checker import Violation, check
from chaos.judge.history import expectation_dict, load_history
from chaos.judge.provenance import source_commit
from chaos.judge.timeline import draw
from chaos.lab.cluster import Cluster
from chaos.lab.network import Lab
from chaos.lab.vipwatch import VipWatch

START_TIMEOUT = 45.0  # ensemble + both daemons + first promotion, on 2 busy cores
WARMUP = 2.0  # client traffic before the fault: the baseline the outage is measured from
TAIL = 3.0  # observation after the last repair: a returning node must not disturb anything


@dataclass
class Outcome:
    scenario: Scenario
    run_dir: Path
    passed: bool
    results: dict[str, Any]


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM/SIGHUP behave like Ctrl-C, so every `finally` (teardown) runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_one(scenario: Scenario, run_dir: Path, seed: int, log: Any = print) -> Outcome:
    timings: dict[str, float] = {}
    error: str | None = None
    notes: list[str] = []
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "scenario.json").write_text(
        json.dumps(
            {
                "name": scenario.name,
                "number": scenario.number,
                "description": scenario.description,
                "seed": seed,
                "trigger": scenario.trigger,
                "expect": expectation_dict(scenario.expect),
                "commit": source_commit(),
            },
            indent=1,
        )
    )
    cpu0 = _cpu()
    t0 = time.monotonic()
    lab = Lab.create(run_dir)
    timings["lab_build"] = round(time.monotonic() - t0, 3)
    cluster = Cluster(lab, fenced_store=scenario.fenced_store, mail=scenario.mail)
    vips = VipWatch(lab)  # who holds the service IP, for the checker's VIP rule
    try:
        with signals_raise():
            timings["zookeeper_quorum"] = round(cluster.start_zookeeper(), 3)
            cluster.prepare_nodes()
            t = time.monotonic()
            vips.start()
            cluster.start_nodes()
            active = cluster.wait_single_active(START_TIMEOUT)
            if active is None:
                raise RuntimeError(
                    f"no single active {START_TIMEOUT:.0f}s after start (serving: "
                    f"{sorted(cluster.serving())}); see mail1/failoverd.log, mail2/failoverd.log"
                )
            timings["first_active"] = round(time.monotonic() - t, 3)
            log(f"  lab {lab.prefix}: quorum {timings['zookeeper_quorum']}s, {active} active")
            cluster.start_client()
            time.sleep(WARMUP)
            scenario.inject(Ctx(cluster, random.Random(seed), active, scenario.trigger))
            t = time.monotonic()
            settled = cluster.wait_single_active(scenario.expect.settle + 5)
            timings["settle_after_heal"] = round(time.monotonic() - t, 3)
            notes += cluster.repair()
            if notes:
                lab.record("repaired", what=notes)
                cluster.wait_single_active(20)
            time.sleep(TAIL)
            (run_dir / "status.json").write_text(cluster.status(settled or "mail1"))
            cluster.stop_client()
            if scenario.mail:
                readback.collect(cluster)  # drain the queue, read the mailboxes over IMAP
    except BaseException as e:  # noqa: BLE001 - Ctrl-C too: record, tear down, re-raise below
        error = "".join(traceback.format_exception_only(type(e), e)).strip()
        (run_dir / "error.txt").write_text(traceback.format_exc())
        if isinstance(e, KeyboardInterrupt):
            raise  # after the teardown below
    finally:
        vips.stop()
        t = time.monotonic()
        cluster.teardown()
        if scenario.mail:
            readback.fsck_store(run_dir)  # after the final unmount
        timings["teardown"] = round(time.monotonic() - t, 3)
        cpu1 = _cpu()
        timings["cpu_lab"] = round(cpu1[0] - cpu0[0], 3)
        timings["cpu_runner"] = round(cpu1[1] - cpu0[1], 3)
    return _judge(scenario, run_dir, seed, timings, error, notes)


def _cpu() -> tuple[float, float]:
    """CPU seconds (user+sys) of the lab's processes once reaped (ZooKeeper, daemons, sshd,
    client: all children of the runner) and of the runner itself: what one lab costs."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    return kids.ru_utime + kids.ru_stime, me.ru_utime + me.ru_stime


def _judge(
    scenario: Scenario,
    run_dir: Path,
    seed: int,
    timings: dict[str, float],
    error: str | None,
    notes: list[str],
) -> Outcome:
    history = load_history(run_dir)
    mail = readback.judge(run_dir) if scenario.mail else None
    verdict = check(history, scenario.expect, None if mail is None else mail.pop("delivered_set"))
    if error is not None:
        verdict.violations.insert(0, Violation("lab_error", error))
        verdict.passed = False
    if mail is not None:
        verdict.violations += [Violation(rule, msg) for rule, msg in mail.pop("problems")]
        verdict.passed = not verdict.violations
    results = {
        "scenario": scenario.name,
        "number": scenario.number,
        "description": scenario.description,
        "seed": seed,
        "expect": expectation_dict(scenario.expect),
        "commit": source_commit(),
        "timings": timings,
        "repairs": notes,
        **verdict.to_json(),
        **(mail or {}),
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    try:
        draw(history, verdict, f"{scenario.number}. {scenario.name}", run_dir / "timeline.png")
    except Exception as e:  # noqa: BLE001 - a missing picture must not hide the verdict
        (run_dir / "timeline-error.txt").write_text(f"{type(e).__name__}: {e}")
    return Outcome(scenario, run_dir, verdict.passed, results)


def describe(o: Outcome) -> str:
    r = o.results
    head = f"{'PASS' if o.passed else 'FAIL'} {o.scenario.number:>2}. {o.scenario.name}"
    outs = [x.get("outage") for x in r.get("outages", [])]
    shown = ", ".join("none" if x is None else f"{x:.2f}s" for x in outs) or "-"
    lines = [
        f"{head}: takeovers {r['takeovers']}, failovers {r['failovers']}, outage {shown}, "
        f"acked {r['stats']['acknowledged']}/{r['stats']['deliveries']}"
        + (
            f", delivered {r['delivered']}, lost {r['lost']}, duplicated {r['duplicated']}, "
            f"fsck {'ok' if r['fsck_ok'] else 'ERRORS'}"
            if "fsck_ok" in r
            else ""
        )
    ]
    lines += [f"      {v['rule']}: {v['message']}" for v in r["violations"]]
    lines.append(f"      {o.run_dir}")
    return "\n".join(lines)
