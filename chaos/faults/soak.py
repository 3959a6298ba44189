"""`python -m chaos soak --minutes N [--seed S]`: random composed fault schedules.

Each run is a fresh lab (the same runner as `chaos run`) given one schedule drawn
from the seed: 1-3 faults from the whole set (kinds, targets, start times,
durations, so they overlap), each healed at its own time; then the lab is
repaired (powered-off nodes back, killed daemons restarted) and the cluster must
settle. The checker judges each run with the safety rules of every scenario
(no overlap, no double VIP, no lost mail, epochs owned and rising, the client
recovers, one active after the heal) — a schedule has no failover expectation.

Schedule k of seed S depends only on (S, k), so `--seed S` replays the same
schedules in the same order (what the lab does with them can still differ: it
is a real, timing-dependent system — that is why it is run). Targets are roles
(`active`, `standby`), resolved when the fault fires.

New runs start while less than N minutes have passed, so the soak lasts N
minutes plus at most one run (~20-40 s). Exit status: 0 every run held, 1 a
violation (seed, schedule and folder printed).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.faults import nemesis
from chaos.faults.scenario import Composite, Ctx, Scenario
from chaos.faults.store_full import store_full
from chaos.judge.history import Expectation
from chaos.lab.cluster import Cluster
from chaos.lab.leftovers import cleanup
from chaos.layout import MAIL_HOSTS
from chaos.repetition import Outcome, describe, run_one

EXPECT = Expectation("allowed", settle=30.0)

Apply = Callable[[Cluster, str, random.Random], nemesis.Heal]


@dataclass(frozen=True)
class Kind:
    name: str
    apply: Apply
    max_hold: float = 12.0  # seconds the fault may last
    targeted: bool = True  # takes a mail node (a role) as target


def _other(node: str) -> str:
    return next(n for n in MAIL_HOSTS if n != node)


KINDS: list[Kind] = [
    Kind("kill-daemon", lambda c, n, r: nemesis.kill_daemon(c, n)),
    Kind("pause-daemon", lambda c, n, r: nemesis.pause_daemon(c, n)),
    Kind("link-down", lambda c, n, r: nemesis.link_down(c, n)),
    Kind("cut-zookeeper", lambda c, n, r: nemesis.cut_from_zookeeper(c, n)),
    Kind("zk-oneway-to", lambda c, n, r: nemesis.zk_one_way(c, n, "to-node")),
    Kind("zk-oneway-from", lambda c, n, r: nemesis.zk_one_way(c, n, "from-node")),
    Kind("peer-link", lambda c, n, r: nemesis.cut_peer_link(c), targeted=False),
    Kind("kill-zk-leader", lambda c, n, r: nemesis.kill_zk_leader(c), targeted=False),
    Kind(
        "pause-zk",
        lambda c, n, r: nemesis.pause_zk_server(c, r.choice(["leader", "follower"]), n, 0.9, 1),
        max_hold=1.0,
    ),
    Kind("zk-quorum-lost", lambda c, n, r: nemesis.zk_quorum_lost(c), targeted=False),
    Kind("zk-minority", lambda c, n, r: nemesis.zk_minority(c, n)),
    Kind("power-off", lambda c, n, r: nemesis.power_off(c, n)),
    Kind("lossy", lambda c, n, r: nemesis.lossy(c, n, r.choice([10, 20, 30]))),
    Kind("unhealthy", lambda c, n, r: nemesis.unhealthy(c, n)),
    Kind("overload", lambda c, n, r: nemesis.overload(c, n, 0.5)),
    Kind("freeze-node", lambda c, n, r: nemesis.freeze_node(c, n)),
    Kind("freeze-service", lambda c, n, r: nemesis.freeze_service_mid_data(c, n, 3.0)),
    Kind("starve-daemon", lambda c, n, r: nemesis.starve_daemon(c, n, r.choice([0.05, 0.2]))),
    Kind("block-fencing", lambda c, n, r: nemesis.block_fencing(c, _other(n), n)),
    Kind("isolate", lambda c, n, r: nemesis.isolate(c, n)),
    Kind("true-power-off", lambda c, n, r: nemesis.true_power_off(c, n)),
    Kind("power-switch-hangs", lambda c, n, r: nemesis.power_switch_hangs(c, _other(n), n)),
    Kind("state-dir-ro", lambda c, n, r: nemesis.state_dir_read_only(c, n)),
    Kind("store-full", lambda c, n, r: store_full(c, n)),
]
BY_NAME = {k.name: k for k in KINDS}


@dataclass(frozen=True)
class Step:
    kind: str
    target: str | None  # "active" | "standby" | None
    start: float  # seconds after the schedule began
    hold: float
    seed: int  # for the kind's own choices (loss %, which ZooKeeper server, ...)

    def describe(self) -> str:
        on = f" {self.target}" if self.target else ""
        return f"{self.kind}{on} @{self.start:.1f}s for {self.hold:.1f}s"


def draw(seed: int, k: int) -> list[Step]:
    """Schedule k of `seed`: 1-3 faults, starts in [0, 8) s, holds up to the kind's max."""
    rng = random.Random(f"failoverd-soak/{seed}/{k}")
    steps = []
    for _ in range(rng.choice([1, 2, 2, 3])):
        kind = rng.choice(KINDS)
        steps.append(
            Step(
                kind.name,
                rng.choice(["active", "standby"]) if kind.targeted else None,
                round(rng.uniform(0.0, 8.0), 2),
                round(rng.uniform(min(1.0, kind.max_hold), kind.max_hold), 2),
                rng.randrange(1 << 30),
            )
        )
    return sorted(steps, key=lambda s: s.start)


def execute(x: Ctx, steps: list[Step], label: str) -> None:
    """Fire and heal the steps on their own clocks, then repair the lab; one checker fault."""
    c = x.cluster
    with Composite(x, label) as comp:
        t0 = time.monotonic()
        events = [(s.start, 1, i) for i, s in enumerate(steps)]
        events += [(s.start + s.hold, 0, i) for i, s in enumerate(steps)]
        applied: set[int] = set()
        for at, is_start, i in sorted(events):
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            step, tag = steps[i], f"#{i} {steps[i].describe()}"
            if not is_start:
                if i in applied:
                    _heal(c, comp, tag)
                continue
            node = _resolve(c, x, step.target)
            try:
                comp.step(tag, _bind(c, step, node))
                applied.add(i)
                c.lab.record("soak_target", step=tag, node=node)
            except Exception as e:  # noqa: BLE001 - a fault that cannot fire now is skipped
                c.lab.record("nemesis_skipped", step=tag, error=f"{type(e).__name__}: {e}")
        while comp.heals:
            _heal(c, comp, comp.heals[-1][0])
        # Before the heal is recorded (settling is judged from here): every ZooKeeper
        # server and mail node back, as a schedule may leave them down.
        notes = [f"started ZooKeeper {z}" for z in nemesis.restart_zookeeper(c)]
        nemesis.wait_quorum(c, 60)
        notes += c.repair()
        if notes:
            c.lab.record("repaired", what=notes)


def _heal(c: Cluster, comp: Composite, tag: str) -> None:
    """Heal one step; a heal that fails (another fault in the way) is recorded, not fatal:
    the heals of the other steps and the repair still run."""
    try:
        comp.heal(tag)
    except Exception as e:  # noqa: BLE001
        c.lab.record("heal_failed", step=tag, error=f"{type(e).__name__}: {e}")


def _bind(c: Cluster, step: Step, node: str) -> Callable[[], nemesis.Heal]:
    return lambda: BY_NAME[step.kind].apply(c, node, random.Random(step.seed))


def _resolve(c: Cluster, x: Ctx, role: str | None) -> str:
    serving = c.serving()
    active = next(iter(serving)) if len(serving) == 1 else x.active
    return _other(active) if role == "standby" else active


def scenario_for(seed: int, k: int, steps: list[Step]) -> Scenario:
    label = "; ".join(s.describe() for s in steps)
    return Scenario(
        0,
        f"soak-{k:03d}",
        f"soak seed {seed} schedule {k}: {label}",
        EXPECT,
        lambda x: execute(x, steps, f"schedule {k}"),
    )


def soak(
    minutes: float,
    seed: int | None,
    out: Path = Path("chaos-runs"),
    max_runs: int | None = None,
    log: Any = print,
    only: int | None = None,
) -> tuple[Path, list[Outcome]]:
    """Run schedules 0, 1, 2, ... of `seed` for `minutes`; `only`: just schedule `only`."""
    removed = cleanup()
    if removed:
        log(f"removed leftover lab namespaces: {' '.join(removed)}")
    seed = seed if seed is not None else random.randrange(1_000_000)
    folder = (out / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-soak-{seed}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    log(f"chaos soak {folder} (seed {seed}, {minutes:g} min)")
    deadline = time.monotonic() + minutes * 60
    outcomes: list[Outcome] = []
    runs: list[dict[str, Any]] = []
    k = only or 0
    while time.monotonic() < deadline and (max_runs is None or len(runs) < max_runs):
        if only is not None and k != only:
            break
        steps = draw(seed, k)
        s = scenario_for(seed, k, steps)
        log(f"- schedule {k}: {s.description.split(': ', 1)[1]}")
        o = run_one(s, folder / s.name, seed, log)
        outcomes.append(o)
        log(describe(o))
        runs.append(
            {
                "schedule": k,
                "steps": [asdict(st) for st in steps],
                "passed": o.passed,
                "folder": o.run_dir.name,
                "violations": [v["rule"] for v in o.results["violations"]],
                "takeovers": o.results["takeovers"],
                "outages": [x.get("outage") for x in o.results["outages"]],
            }
        )
        summary = {"seed": seed, "minutes": minutes, "passed": all(r["passed"] for r in runs)}
        (folder / "soak.json").write_text(json.dumps({**summary, "runs": runs}, indent=1))
        k += 1
    failed = [(r, o) for r, o in zip(runs, outcomes, strict=True) if not o.passed]
    log(f"soak: {len(runs) - len(failed)}/{len(runs)} runs held (seed {seed}); {folder}")
    for r, o in failed:
        log(f"VIOLATION seed {seed} schedule {r['schedule']}: {o.scenario.description}")
        log(f"  steps: {json.dumps(r['steps'])}")
        log(f"  folder: {o.run_dir}")
        log(f"  replay: python -m chaos soak --minutes 1 --seed {seed} --schedule {r['schedule']}")
    return folder, outcomes
