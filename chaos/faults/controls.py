"""Negative controls: planted failures the checker must catch (`python -m chaos controls`).

A checker that passes everything proves nothing. Each control runs the real
mail node (`--mail postfix`, or the toy service) with one realistic mistake planted and succeeds
only if the checker *flags* it:

* `local-queue` — Postfix's queue_directory on node-local disk instead of the
  store (the Maildirs stay on the store), with a delivery backlog (a flood:
  deliveries throttled to one per second) on the first active; the active is
  powered off right after mail was acknowledged. The acknowledged mail still
  in its queue is on a disk nobody else mounts: `lost` must be reported.
* `store-full-acks` — the toy service with a planted bug: when the store write
  fails (the store full, scenario 31) it answers 250 anyway. Those messages were
  acknowledged and are in no store: `lost` must be reported.
* `lying-fencer` — the only fencing method is `/bin/true`, and the active's
  failoverd is frozen (SIGSTOP) while its Postfix keeps running. The standby
  "fences", mounts the store a second time and serves: `overlap` must be
  reported; store damage (fsck errors, lost or doubled mail) is reported when
  it shows.

The third control, keepalived's split brain in the quick benchmark, is asserted
in tests/chaos/lab/test_bench_quick.py.

Exit status: 0 every control was flagged, 1 one was not, 2 usage/privileges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.faults import nemesis
from chaos.faults.scenario import Ctx, Scenario
from chaos.faults.store_full import store_full
from chaos.judge.history import Expectation
from chaos.lab.leftovers import cleanup
from chaos.records import read_records
from chaos.repetition import Outcome, run_one

ACKED_BEFORE_FAULT = 20


@dataclass(frozen=True)
class Control:
    name: str
    description: str
    mail: str | None  # the planted mail-node variant (chaos/services/postfix.py); None: toy service
    must_flag: tuple[str, ...]  # every one of these violations must be reported
    inject: Callable[[Ctx], None]


def _acked(run_dir: Path) -> int:
    return sum(1 for r in read_records(run_dir / "client.jsonl") if r.get("code") == 250)


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _power_off_after_acks(x: Ctx) -> None:
    c = x.cluster
    if not _wait(lambda: _acked(c.run_dir) >= ACKED_BEFORE_FAULT, 30):
        raise RuntimeError(f"fewer than {ACKED_BEFORE_FAULT} messages acknowledged in 30 s")
    # Only the first active had the backlog; the node taking over delivers at once.
    (c.run_dir / "flags" / "mail-backlog").unlink(missing_ok=True)
    x.fault(
        "power off (queue on local disk)", lambda: nemesis.power_off(c, x.active), 25, x.failed_over
    )


def _freeze_with_lying_fencer(x: Ctx) -> None:
    c = x.cluster
    # Frozen well past the session timeout: the standby takes the lease and
    # "fences" with /bin/true while this node's Postfix keeps serving.
    x.fault("SIGSTOP failoverd, fencer lies", lambda: nemesis.pause_daemon(c, x.active), 12)


def _store_full_acking(x: Ctx) -> None:
    c = x.cluster
    # The planted bug: the active's service answers 250 when the store write failed.
    (c.run_dir / "flags" / f"{x.active}.bug-ack-unstored").write_text("planted\n")
    x.fault("mail store full", lambda: store_full(c, x.active), 6)


CONTROLS = (
    Control(
        "local-queue",
        "Postfix queue on node-local disk + backlog, power-off after acked mail: lost mail",
        "postfix-local-queue",
        ("lost",),
        _power_off_after_acks,
    ),
    Control(
        "lying-fencer",
        "fencing is /bin/true, the active's daemon frozen: overlap (and store damage)",
        "postfix-lying-fencer",
        ("overlap",),
        _freeze_with_lying_fencer,
    ),
    Control(
        "store-full-acks",
        "toy service answers 250 when the full store refused the write: lost mail",
        None,
        ("lost",),
        _store_full_acking,
    ),
)


def _lost_count(violations: list[dict[str, Any]]) -> int:
    """'N acknowledged messages not in the store: [...]' -> N (0 when nothing was lost)."""
    for v in violations:
        if v["rule"] == "lost":
            head = v["message"].split(" ", 1)[0]
            return int(head) if head.isdigit() else 0
    return 0


def run_controls(out: Path = Path("chaos-runs"), log: Any = print) -> tuple[Path, list[dict]]:
    cleanup()
    folder = (out / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-controls").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    log(f"chaos controls {folder}")
    rows = []
    for k, ctl in enumerate(CONTROLS):
        scenario = Scenario(
            100 + k,
            f"control-{ctl.name}",
            ctl.description,
            Expectation("allowed", 25),
            ctl.inject,
            mail=ctl.mail,
        )
        o: Outcome = run_one(scenario, folder / f"control-{ctl.name}", seed=k)
        rules = {v["rule"] for v in o.results["violations"]}
        errors = [v["message"] for v in o.results["violations"] if v["rule"] == "lab_error"]
        flagged = not errors and all(r in rules for r in ctl.must_flag)
        damage = [r for r in ("fsck", "lost") if r in rules]
        if o.results.get("duplicated"):
            damage.append(f"{o.results['duplicated']} duplicated")
        row = {
            "control": ctl.name,
            "flagged": flagged,
            "must_flag": list(ctl.must_flag),
            "violations": sorted(rules),
            "store_damage": damage,
            # The toy service (no mailboxes to read): the checker's own counts.
            "acked": o.results.get("acked", o.results.get("stats", {}).get("acknowledged")),
            "lost": o.results.get("lost", _lost_count(o.results["violations"])),
            "duplicated": o.results.get("duplicated"),
            "fsck_ok": o.results.get("fsck_ok"),
            "folder": str(o.run_dir),
            "errors": errors,
        }
        rows.append(row)
        verdict = "FLAGGED" if flagged else "MISSED"
        log(
            f"{verdict} {ctl.name}: violations {sorted(rules)}; acked {row['acked']}, "
            f"lost {row['lost']}, duplicated {row['duplicated']}, fsck_ok {row['fsck_ok']}"
            + (f"; lab error: {errors[0]}" if errors else "")
        )
        log(f"      {o.run_dir}")
    (folder / "controls.json").write_text(json.dumps(rows, indent=1))
    return folder, rows
