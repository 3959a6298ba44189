"""`python -m chaos run --jobs K`: up to K labs at once.

Most of a scenario run is waiting (warm-up, fault holds, settle, tail), so labs
overlap well on two cores. Each repetition runs in its own forked process and
builds its own lab, exactly as a serial run does; nothing is shared but the run
folder's summary, which only this (parent) process writes:

* lab prefix: `fo<pid of the worker>` claimed atomically in /run/failoverd-chaos
  (chaos/lab/registry.py), so namespaces, cgroups (<prefix>-<group>), the mail store's
  short dir (/run/failoverd-chaos/mail/<prefix>) and loop devices are per lab;
* every file (keys, sshd config and pid file, ZooKeeper data, logs, state dir)
  is under the repetition's own folder or derived from its path;
* nothing listens in the root namespace: every process lives in its lab;
* the registry names the worker's pid: `chaos cleanup` (from anyone) keeps the
  lab while the worker lives.

Exclusive scenarios (Scenario.exclusive: judged on CPU timing) run last, alone.
Ctrl-C/SIGTERM: each worker gets one SIGTERM and tears its lab down as a serial
run does; a worker that does not finish in time is killed and its lab cleaned up.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.faults.scenario import Scenario
from chaos.lab.leftovers import cleanup
from chaos.repetition import Outcome, describe, run_one, signals_raise

Item = tuple[Scenario, Path, int]  # scenario, repetition folder, seed
STOP_GRACE = 90.0  # a worker's teardown after SIGTERM (mail nodes unmount, fsck)


def order(plan: list[Item]) -> list[int]:
    """Indices of `plan` in start order: shared scenarios first, exclusive ones last."""
    return [i for i, it in enumerate(plan) if not it[0].exclusive] + [
        i for i, it in enumerate(plan) if it[0].exclusive
    ]


def may_start(item: Item, running: list[Item], jobs: int) -> bool:
    """An exclusive scenario starts only on an empty machine, and nothing joins it."""
    if len(running) >= jobs or any(r[0].exclusive for r in running):
        return False
    return not (item[0].exclusive and running)


def run_parallel(
    plan: list[Item],
    jobs: int,
    on_outcome: Callable[[list[Outcome]], None],
    log: Any = print,
) -> list[Outcome]:
    """Run every item of `plan`, up to `jobs` at once; outcomes in plan order."""
    ctx = multiprocessing.get_context("fork")  # the scenario (functions) is inherited
    queue = order(plan)
    running: dict[int, multiprocessing.process.BaseProcess] = {}
    done: dict[int, Outcome] = {}
    with signals_raise():
        try:
            while queue or running:
                while queue and may_start(plan[queue[0]], [plan[i] for i in running], jobs):
                    i = queue.pop(0)
                    s, run_dir, seed = plan[i]
                    log(f"- {run_dir.name} ... (started, {len(running) + 1} running)")
                    p = ctx.Process(target=_worker, args=(s, run_dir, seed), name=run_dir.name)
                    p.start()
                    running[i] = p
                sentinels = {p.sentinel: i for i, p in running.items()}
                for ready in multiprocessing.connection.wait(list(sentinels)):
                    i = sentinels[ready]  # type: ignore[index]
                    p = running.pop(i)
                    p.join()
                    done[i] = outcome_of(*plan[i])
                    if p.exitcode != 0 and not (plan[i][1] / "results.json").exists():
                        cleanup()  # the worker died without tearing its lab down
                    log(describe(done[i]))
                    on_outcome([done[k] for k in sorted(done)])
        except KeyboardInterrupt:
            _stop(running)
            raise
    return [done[i] for i in range(len(plan))]


def _worker(scenario: Scenario, run_dir: Path, seed: int) -> None:
    # Ctrl-C reaches every process of the terminal: the parent forwards it as one
    # SIGTERM, so that a worker's teardown is not interrupted by a second signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tag = run_dir.name

    def log(msg: str) -> None:
        print("\n".join(f"  [{tag}] {line}" for line in str(msg).splitlines()), flush=True)

    try:
        run_one(scenario, run_dir, seed, log)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        # A forked multiprocessing child leaves with os._exit: run the atexit hooks
        # (state dirs under /run/failoverd-test) as a serial runner would at its exit.
        atexit._run_exitfuncs()


def outcome_of(scenario: Scenario, run_dir: Path, seed: int) -> Outcome:
    """The worker's verdict, from its results.json (a worker that died wrote none)."""
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError) as e:
        results = {
            "scenario": scenario.name,
            "number": scenario.number,
            "seed": seed,
            "passed": False,
            "violations": [{"rule": "lab_error", "message": f"no results.json: {e}"}],
            "takeovers": 0,
            "failovers": 0,
            "outages": [],
            "stats": {"acknowledged": 0, "deliveries": 0},
            "timings": {},
        }
    return Outcome(scenario, run_dir, bool(results.get("passed")), results)


def _stop(running: dict[int, multiprocessing.process.BaseProcess]) -> None:
    for p in running.values():
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(p.pid, signal.SIGTERM)  # type: ignore[arg-type]
    for p in running.values():
        p.join(STOP_GRACE)
        if p.is_alive():
            p.kill()
            p.join()
    cleanup()  # the labs of workers that had to be killed (their runner is dead)
