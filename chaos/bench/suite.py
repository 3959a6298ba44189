"""`python -m chaos.bench`: how fast, how safe, and at what cost.

    python -m chaos.bench [--quick] [--repeat N] [--out DIR] [--only CASE,...]
                          [--mail toy|postfix]

Runs, and prints as Markdown tables (also bench.md, bench.json and bench.png
in the output folder, default ./chaos-runs/bench-<timestamp>/):

* lab cases (chaos lab, real namespaces, the client's view of the VIP), each
  repeated N times: failoverd's unplanned failovers (daemon + service crash
  with ssh fencing, power-off with power fencing, cut from ZooKeeper, daemon
  crash with the service left running), a planned switchover, the peer-link
  cut; and the keepalived baseline in the same lab under the same faults;
* footprint (loopback): RSS, CPU and ZooKeeper requests of idle daemons and
  during a failover (chaos/bench/footprint.py);
* scale (loopback): many clusters on one ensemble, ZooKeeper leader kill and
  every active killed at once (chaos/bench/scale.py).

`--mail postfix` runs the lab cases on the real mail node (the ext4 store, the VIP,
Postfix and Dovecot: chaos/lab/postfix_node.py, as `python -m chaos run --mail
postfix` does), by default the crash, power-off, isolate and both switchover cases
and keepalived's baseline on the same node (chaos/bench/keepalived.py); lost mail is
judged against the mailboxes read over IMAP, and the store is checked with e2fsck.
Every failoverd case also gets a step-by-step split of its takeovers
(chaos/bench/phases.py): detection, contention, each fence method with its ssh
connect, each resource's stop on the fenced node and the verification, each
resource's start.

`--quick` (CI) runs few repetitions and small windows, in about four minutes
on two cores. Exit status: 0 done and no failoverd split brain, 1 a part failed
or a failoverd case had two nodes serving at once, 2 usage error or not root.
Targets are shown, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.bench import causes as bench_causes
from chaos.bench import phases as bench_phases
from chaos.bench import report
from chaos.bench.common import log
from chaos.repetition import signals_raise
from tests.support.checkout import use_checkout


@dataclass(frozen=True)
class CaseSpec:
    key: str
    system: str
    title: str
    kind: str  # unplanned | planned | no-failover
    quick: int  # repetitions in --quick
    full: int = 20  # repetitions by default (--repeat overrides)


LAB_CASES = (
    CaseSpec("crash", "failoverd", "daemon + service crash, ssh fencing", "unplanned", 2),
    CaseSpec("power-off", "failoverd", "power-off, power fencing", "unplanned", 2),
    CaseSpec("cut-zookeeper", "failoverd", "active cut from ZooKeeper", "unplanned", 2),
    CaseSpec("isolate", "failoverd", "isolated active (all its traffic dropped)", "unplanned", 1),
    CaseSpec(
        "zk-minority", "failoverd", "active with its ZooKeeper server in a minority", "unplanned", 1
    ),
    CaseSpec("kill-daemon", "failoverd", "daemon crash, service keeps running", "unplanned", 1),
    CaseSpec("switchover", "failoverd", "planned switchover (`switchover --to`)", "planned", 3),
    CaseSpec("switchover-any", "failoverd", "planned switchover (`switchover`)", "planned", 2),
    CaseSpec("cut-peer-link", "failoverd", "link mail1–mail2 cut", "no-failover", 1),
    CaseSpec("ka-crash", "keepalived", "keepalived + service crash", "unplanned", 2),
    CaseSpec(
        "ka-kill-daemon", "keepalived", "keepalived crash, service keeps running", "unplanned", 1
    ),
    # Each repetition waits out the client's ARP black hole after the heal (up to
    # ~50 s): 10 repetitions keep the full run within ~35 minutes.
    CaseSpec("ka-cut-peer-link", "keepalived", "link mail1–mail2 cut", "no-failover", 1, 10),
    CaseSpec(
        "ka-switchover", "keepalived", "planned: keepalived stopped on the master", "planned", 2
    ),
)
PARTS = ("footprint", "scale")
ALL = tuple(c.key for c in LAB_CASES) + PARTS
MAILS = ("toy", "postfix")
# What `--mail toy` runs without --only: today's set (ka-switchover only on request).
TOY_DEFAULT = tuple(k for k in ALL if k != "ka-switchover")
# `--mail postfix`: the unplanned and planned failovers an operator of a mail pair
# meets, and keepalived's baseline on the same real node.
POSTFIX_DEFAULT = (
    "crash",
    "power-off",
    "isolate",
    "switchover",
    "switchover-any",
    "ka-crash",
    "ka-switchover",
)
POSTFIX_REFUSED = {
    # Both leave the old master serving and the store mounted while the other node
    # mounts it: a double mount that damages the store for every later repetition.
    "ka-kill-daemon": "keepalived dies and the services keep the store mounted",
    "ka-cut-peer-link": "both masters mount the store",
}
# On the real node keepalived's crash is the machine's (see chaos/bench/keepalived.py).
POSTFIX_TITLES = {"ka-crash": "master machine crash (power-off), no fencing"}


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m chaos.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions (CI), ~4 minutes")
    ap.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="repetitions per lab case (20; keepalived link cut 10)",
    )
    ap.add_argument("--out", type=Path, help="output folder (./chaos-runs/bench-<timestamp>)")
    ap.add_argument(
        "--only",
        action="append",
        metavar="CASES",
        help=f"comma-separated subset of {','.join(ALL)}",
    )
    ap.add_argument(
        "--mail",
        choices=MAILS,
        default="toy",
        help="the lab's mail node: the toy SMTP service (default) or Postfix and Dovecot "
        f"on an ext4 store (default cases then: {','.join(POSTFIX_DEFAULT)})",
    )
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--scale-clusters", type=int, metavar="N", help="clusters (50; quick 10)")
    ap.add_argument("--scale-session", type=float, default=3.0, metavar="S", help="T at scale")
    ap.add_argument(
        "--leader-kills", type=int, metavar="N", help="ZooKeeper leader kills at scale (3; quick 1)"
    )
    ap.add_argument(
        "--footprint-window", type=float, metavar="S", help="idle window (30; quick 10)"
    )
    ap.add_argument(
        "--ka-recover", type=float, metavar="S", help="keepalived: wait for the VIP (60; quick 20)"
    )
    return ap.parse_args(argv)


def _selected(args: argparse.Namespace) -> list[str] | str:
    """The cases to run, or what is wrong with --only (a usage error)."""
    postfix = args.mail == "postfix"
    if not args.only:
        return list(POSTFIX_DEFAULT if postfix else TOY_DEFAULT)
    chosen = [x.strip() for item in args.only for x in item.split(",") if x.strip()]
    unknown = [x for x in chosen if x not in ALL]
    if unknown:
        return f"unknown case(s) {', '.join(unknown)}; known: {', '.join(ALL)}"
    refused = [f"{k} ({POSTFIX_REFUSED[k]})" for k in chosen if postfix and k in POSTFIX_REFUSED]
    if refused:
        return f"not with --mail postfix: {'; '.join(refused)}"
    return [k for k in ALL if k in chosen]


def _title(spec: CaseSpec, mail: str) -> str:
    return POSTFIX_TITLES.get(spec.key, spec.title) if mail == "postfix" else spec.title


class Bench:
    def __init__(self, args: argparse.Namespace, argv: list[str], chosen: list[str], out: Path):
        self.args, self.chosen, self.out = args, chosen, out
        q = args.quick
        self.repeat = args.repeat
        self.data: dict[str, Any] = {
            "started": datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["python -m chaos bench", *argv]),
            "quick": q,
            "mail": args.mail,
            "machine": {
                "cpus": os.cpu_count(),
                "kernel": platform.release(),
                "python": platform.python_version(),
            },
            "commit": _git_commit(),
            "cases": [],
            "errors": [],
        }

    def reps(self, spec: CaseSpec) -> int:
        return self.repeat or (spec.quick if self.args.quick else spec.full)

    def save(self) -> None:
        (self.out / "bench.json").write_text(json.dumps(self.data, indent=1))

    def part(self, name: str, fn: Any) -> Any:
        """Run one part; a failure is recorded (and the rest still runs), Ctrl-C is not."""
        t0 = time.monotonic()
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - one broken part must not hide the others
            log(f"bench: {name} failed: {type(e).__name__}: {e}")
            self.data["errors"].append({"part": name, "error": traceback.format_exc()})
            return None
        finally:
            self.data.setdefault("durations_s", {})[name] = round(time.monotonic() - t0, 1)
            # Other work on the machine skews timings: keep the load next to the numbers.
            self.data.setdefault("loadavg_after", {})[name] = os.getloadavg()
            self.save()

    def run(self) -> None:
        from chaos.bench.lab_cases import LAB_T

        self.data["lab_session_timeout"] = LAB_T
        if "footprint" in self.chosen:
            from chaos.bench.footprint import run_footprint

            window = self.args.footprint_window or (10.0 if self.args.quick else 30.0)
            self.data["footprint"] = self.part(
                "footprint", lambda: run_footprint(self.out / "footprint", window)
            )
        for system in ("failoverd", "keepalived"):
            specs = [c for c in LAB_CASES if c.system == system and c.key in self.chosen]
            if specs:
                results = self.part(system, lambda s=specs, y=system: self.lab(y, s))
                kinds = {c.key: c.kind for c in LAB_CASES}
                for r in results or []:
                    self.data["cases"].append({**r.to_json(), "kind": kinds[r.key]})
                self.save()
        if "scale" in self.chosen:
            from chaos.bench.scale import run_scale

            n = self.args.scale_clusters or (10 if self.args.quick else 50)
            t = self.args.scale_session
            kills = self.args.leader_kills or (1 if self.args.quick else 3)
            self.data["scale"] = self.part(
                "scale", lambda: run_scale(self.out / "scale", n, t, kills)
            )

    def lab(self, system: str, specs: list[CaseSpec]) -> list[Any]:
        plan = [(c.key, _title(c, self.args.mail), self.reps(c)) for c in specs]
        mail = "postfix" if self.args.mail == "postfix" else None
        if system == "failoverd":
            from chaos.bench.lab_cases import run_failoverd_cases

            results = run_failoverd_cases(plan, self.out / "lab-failoverd", self.args.seed, mail)
            with contextlib.suppress(OSError, ValueError):
                mem = json.loads((self.out / "lab-failoverd" / "daemons.json").read_text())
                self.data["lab_daemons_after"] = mem
            return results
        from chaos.bench.keepalived import run_keepalived_cases

        cap = self.args.ka_recover or (20.0 if self.args.quick else 60.0)
        return run_keepalived_cases(plan, self.out / "lab-keepalived", cap, mail)

    def report(self) -> str:
        t = float(self.data.get("lab_session_timeout", 2.0))
        rows = report.case_rows(self.data["cases"], t)
        fp, sc = self.data.get("footprint"), self.data.get("scale")
        mail = self.data.get("mail", "toy")
        ts = report.targets(rows, fp, sc, t, mail)
        # keepalived's rows have one step: the new master's first answer.
        steps = bench_phases.phase_rows(self.data["cases"])
        self.data["summary"] = {"rows": rows, "targets": ts, "steps": steps}
        self.save()
        parts = [f"`{self.data['command']}` — {self.out} (mail node: {mail})", ""]
        if rows:
            parts += [report.cases_table(rows, t), "", report.phases_table(rows), ""]
        if steps:
            parts += [bench_phases.phase_table(steps), ""]
        parts += report.mail_lines(self.out)
        zkm = [c for c in self.data["cases"] if c["key"] == "zk-minority"]
        if zkm and (split := bench_causes.split_rows(zkm[0]["reps"])):
            self.data["summary"]["zk_minority_split"] = split
            self.save()
            parts += [bench_causes.split_table(split), ""]
        if fp:
            lab = self.data.get("lab_daemons_after")
            parts += [report.footprint_table({**fp, "lab_daemons_after": lab}), ""]
        if sc:
            parts += [report.scale_table(sc), ""]
        parts += [report.targets_table(ts), ""]
        for e in self.data["errors"]:
            parts.append(f"ERROR in {e['part']}: {e['error'].strip().splitlines()[-1]}")
        text = "\n".join(parts)
        (self.out / "bench.md").write_text(text + "\n")
        if rows:
            try:
                report.plot(rows, self.data["cases"], t, self.out / "bench.png")
            except Exception as e:  # noqa: BLE001 - the tables matter more than the picture
                log(f"bench: plot failed: {type(e).__name__}: {e}")
        return text

    def exit_code(self) -> int:
        split = any(c["overlaps"] for c in self.data["cases"] if c["system"] == "failoverd")
        broken = self.data["errors"] or any(c.get("error") for c in self.data["cases"])
        return 1 if split or broken else 0


def _git_commit() -> str | None:
    """The checkout measured (with "+dirty" when it has local changes)."""
    repo = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    use_checkout()
    argv = sys.argv[1:] if argv is None else argv
    args = _args(argv)
    chosen = _selected(args)
    if isinstance(chosen, str):
        print(f"chaos bench: {chosen}", file=sys.stderr)
        return 2
    needs_lab = any(c.key in chosen for c in LAB_CASES)
    if needs_lab and (os.geteuid() != 0 or shutil.which("ip") is None):
        print("chaos bench: the lab cases need root and iproute2 (`ip netns`)", file=sys.stderr)
        return 2
    if any(k.startswith("ka-") for k in chosen) and shutil.which("keepalived") is None:
        print(
            "chaos bench: keepalived is not installed (apt-get install keepalived)", file=sys.stderr
        )
        return 2
    if needs_lab:
        from chaos.lab.leftovers import cleanup

        if removed := cleanup():  # leftovers of crashed runs (never a live run's lab)
            log(f"removed leftover lab namespaces: {' '.join(removed)}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (args.out or Path("chaos-runs") / f"bench-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    log(f"chaos bench -> {out}")
    bench = Bench(args, argv, chosen, out)
    try:
        with signals_raise():
            bench.run()
    except KeyboardInterrupt:
        print("chaos bench: interrupted; everything started was stopped", file=sys.stderr)
        bench.report()
        return 130
    print(bench.report())
    return bench.exit_code()


if __name__ == "__main__":
    sys.exit(main())
