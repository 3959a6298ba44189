"""`python -m chaos`: the chaos lab's command line.

    python -m chaos list
    python -m chaos run SCENARIO... [--repeat N] [--seed S] [--out DIR] [--fenced-store]
    python -m chaos run --all | --smoke
    python -m chaos run ... --mail postfix   the real mail node (Postfix, Dovecot, ext4 store)
    python -m chaos run ... --jobs K         up to K labs at once (exclusive scenarios alone)
    python -m chaos table RUN_FOLDER...      the Markdown table of many runs (chaos/README.md)
    python -m chaos controls                 negative controls (exit 0: every one was flagged)
    python -m chaos soak --minutes N [--seed S]  random composed fault schedules
    python -m chaos check RUN_DIR            re-judge a recorded repetition
    python -m chaos cleanup [--force]        remove leftovers of crashed runs
    python -m chaos power-off --lab RUN NODE the lab's power switch (a fencing command)
    python -m chaos power-status --lab RUN NODE  its status action (the fencer's check_argv)

Exit codes: 0 every run passed (or the command worked), 1 a run failed or the
power switch refused, 2 usage errors or missing privileges.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from tests.support.checkout import use_checkout

POWER_HANG = 120.0  # far past any fencing timeout: the fencer has to give up on it


def _need_root() -> str | None:
    if os.geteuid() != 0:
        return "the chaos lab needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return None


def cmd_list(_: argparse.Namespace) -> int:
    from chaos.faults.catalog import SCENARIOS, SMOKE

    for s in SCENARIOS:
        mark = "*" if s.number in SMOKE else " "
        print(f"{s.number:>2}{mark} {s.name:<20} {s.description}")
        e = s.expect
        bounds = f"failover {e.failover}, single active within {e.settle:.0f}s of the heal"
        if e.max_takeovers is not None:
            bounds += f", at most {e.max_takeovers} takeover(s)"
        if e.max_outage is not None:
            bounds += f", outage <= {e.max_outage:g}s"
        if e.require_alert:
            bounds += ", alert required"
        if e.quiet_after is not None:
            bounds += f", nobody serves from {e.quiet_after:.0f}s into the fault"
        if e.tempfail_during_fault:
            bounds += ", failed deliveries in the fault get 4xx"
        print(f"    {'':<20} expect: {bounds}")
        if s.trigger is not None:
            print(f"    {'':<20} trigger: {s.trigger} (--trigger)")
    print("(* = the CI smoke subset)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from chaos.faults.catalog import SCENARIOS, SMOKE, find
    from chaos.runner import run_scenarios

    if problem := _need_root():
        print(f"chaos: {problem}", file=sys.stderr)
        return 2
    if args.all:
        chosen, label = SCENARIOS, "all"
    elif args.smoke:
        chosen, label = [find(str(n)) for n in SMOKE], "smoke"
    elif args.scenarios:
        try:
            chosen, label = [find(t) for t in args.scenarios], None
        except KeyError as e:
            print(f"chaos: {e.args[0]}", file=sys.stderr)
            return 2
    else:
        print(
            "chaos run: name scenarios (see `python -m chaos list`), --all or --smoke",
            file=sys.stderr,
        )
        return 2
    if args.fenced_store:
        chosen = [replace(s, fenced_store=True) for s in chosen]
    if args.mail:
        chosen = [replace(s, mail=args.mail) for s in chosen]
    if args.trigger is not None:
        from chaos.faults.triggers import parse

        try:
            parse(args.trigger)
        except ValueError as e:
            print(f"chaos run: {e}", file=sys.stderr)
            return 2
        windowed = [s for s in chosen if s.trigger is not None]
        if not windowed:
            print("chaos run: --trigger needs a scenario that takes one", file=sys.stderr)
            return 2
        chosen = [replace(s, trigger=args.trigger) if s.trigger else s for s in chosen]
    if args.jobs < 1:
        print("chaos run: --jobs must be at least 1", file=sys.stderr)
        return 2
    _, outcomes = run_scenarios(chosen, args.out, args.repeat, args.seed, label, jobs=args.jobs)
    return 0 if all(o.passed for o in outcomes) else 1


def cmd_controls(args: argparse.Namespace) -> int:
    from chaos.faults.controls import run_controls

    if problem := _need_root():
        print(f"chaos: {problem}", file=sys.stderr)
        return 2
    _, rows = run_controls(args.out)
    return 0 if rows and all(r["flagged"] for r in rows) else 1


def cmd_soak(args: argparse.Namespace) -> int:
    from chaos.faults.soak import soak

    if problem := _need_root():
        print(f"chaos: {problem}", file=sys.stderr)
        return 2
    if args.minutes <= 0:
        print("chaos soak: --minutes must be positive", file=sys.stderr)
        return 2
    _, outcomes = soak(args.minutes, args.seed, args.out, args.max_runs, only=args.schedule)
    return 0 if outcomes and all(o.passed for o in outcomes) else 1


def cmd_check(args: argparse.Namespace) -> int:
    from chaos.judge.checker import check
    from chaos.judge.history import load_expectation, load_history
    from chaos.judge.timeline import draw

    name, expect = load_expectation(args.run_dir)
    history = load_history(args.run_dir)
    mail = None
    if (args.run_dir / "mailstore.json").exists():  # a --mail postfix run: judge the mailboxes
        from chaos.judge.checker import Violation
        from chaos.judge.readback import judge

        mail = judge(args.run_dir)
    verdict = check(history, expect, None if mail is None else mail.pop("delivered_set"))
    if mail is not None:
        verdict.violations += [Violation(rule, msg) for rule, msg in mail.pop("problems")]
        verdict.passed = not verdict.violations
    draw(history, verdict, name, args.run_dir / "timeline.png")
    out = {k: v for k, v in verdict.to_json().items() if k != "intervals"}
    print(json.dumps({**out, **(mail or {})}, indent=1))
    return 0 if verdict.passed else 1


def cmd_table(args: argparse.Namespace) -> int:
    from chaos.judge.table import main as table_main

    return table_main(args.folders)


def cmd_cleanup(args: argparse.Namespace) -> int:
    from chaos.lab.leftovers import cleanup

    if problem := _need_root():
        print(f"chaos: {problem}", file=sys.stderr)
        return 2
    removed = cleanup(force=args.force)
    print(f"removed {len(removed)} lab namespaces" + (f": {' '.join(removed)}" if removed else ""))
    return 0


def cmd_power_off(args: argparse.Namespace) -> int:
    """The lab's power switch: what a PDU or IPMI fencing command would do."""
    from chaos.lab.network import Lab
    from chaos.layout import MAIL_HOSTS

    lab_dir: Path = args.lab.resolve()
    caller = os.environ.get("FAILOVERD_NODE")
    if args.node not in MAIL_HOSTS:
        print(f"power-off: no such node {args.node!r}", file=sys.stderr)
        return 1
    if caller == args.node:
        print("power-off: refusing to power off the caller itself", file=sys.stderr)
        return 1
    if (lab_dir / "flags" / "power-disabled").exists():
        print("power-off: power switch unreachable (scenario fault)", file=sys.stderr)
        return 1
    if (lab_dir / "flags" / "power-hang").exists():  # a switch that never answers
        time.sleep(POWER_HANG)
        print("power-off: no answer from the power switch", file=sys.stderr)
        return 1
    lab = Lab.load(lab_dir)
    killed = lab.power_off(args.node, by=caller or "operator")
    print(f"power-off: {args.node} is off ({killed} processes killed)")
    return 0


def cmd_power_status(args: argparse.Namespace) -> int:
    """The power switch's status action (the power fencer's check_argv): exit 0 while
    the switch could power NODE off. Fence readiness runs it every check_interval."""
    from chaos.layout import MAIL_HOSTS

    if args.node not in MAIL_HOSTS:
        print(f"power-status: no such node {args.node!r}", file=sys.stderr)
        return 1
    if (args.lab.resolve() / "flags" / "power-disabled").exists():
        print("power-status: power switch unreachable (scenario fault)", file=sys.stderr)
        return 1
    print(f"power-status: switch reachable, outlet of {args.node} controllable")
    return 0


def main(argv: list[str] | None = None) -> int:
    use_checkout()
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["bench"]:  # the benchmark has its own options (python -m chaos bench -h)
        from chaos.bench.suite import main as bench_main

        return bench_main(words[1:])
    ap = argparse.ArgumentParser(prog="python -m chaos", description="failoverd's chaos lab")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("bench", help="outage, footprint, scale and keepalived baseline benchmarks")
    sub.add_parser("list", help="list the scenarios").set_defaults(fn=cmd_list)
    run = sub.add_parser("run", help="run scenarios, each in a fresh lab")
    run.add_argument("scenarios", nargs="*", help="numbers or names (see list)")
    run.add_argument("--all", action="store_true", help="every scenario")
    run.add_argument("--smoke", action="store_true", help="the CI subset (1 2 4 5 14)")
    run.add_argument("--repeat", type=int, default=1, metavar="N")
    run.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="K",
        help="up to K labs at once (default 1); exclusive scenarios still run alone",
    )
    run.add_argument("--seed", type=int, default=None, metavar="S")
    run.add_argument("--out", type=Path, default=Path("chaos-runs"), help="default ./chaos-runs")
    run.add_argument(
        "--fenced-store",
        action="store_true",
        help="the shared store rejects stale epochs (defence in depth; default: record them)",
    )
    run.add_argument(
        "--mail",
        choices=["postfix"],
        default=None,
        help="run Debian's Postfix and Dovecot on a loop-device store (default: the toy service)",
    )
    run.add_argument(
        "--trigger",
        metavar="SPEC",
        help="when a windowed scenario's fault fires: now, delay:LO-HI, EVENT[@active|@standby]",
    )
    run.set_defaults(fn=cmd_run)
    ctl = sub.add_parser(
        "controls", help="negative controls: planted loss and split brain must be flagged"
    )
    ctl.add_argument("--out", type=Path, default=Path("chaos-runs"), help="default ./chaos-runs")
    ctl.set_defaults(fn=cmd_controls)
    sk = sub.add_parser("soak", help="random composed fault schedules, reproducible by seed")
    sk.add_argument("--minutes", type=float, required=True, metavar="N")
    sk.add_argument("--seed", type=int, default=None, metavar="S")
    sk.add_argument("--max-runs", type=int, default=None, metavar="K", help="stop after K runs")
    sk.add_argument(
        "--schedule", type=int, default=None, metavar="K", help="replay only schedule K of the seed"
    )
    sk.add_argument("--out", type=Path, default=Path("chaos-runs"), help="default ./chaos-runs")
    sk.set_defaults(fn=cmd_soak)
    chk = sub.add_parser("check", help="re-run the checker on a recorded repetition folder")
    chk.add_argument("run_dir", type=Path)
    chk.set_defaults(fn=cmd_check)
    tb = sub.add_parser("table", help="the Markdown table of every results.json under FOLDERs")
    tb.add_argument("folders", nargs="+", type=Path, metavar="FOLDER")
    tb.set_defaults(fn=cmd_table)
    cl = sub.add_parser("cleanup", help="remove leftover lab namespaces and processes")
    cl.add_argument("--force", action="store_true", help="also labs whose runner is alive")
    cl.set_defaults(fn=cmd_cleanup)
    po = sub.add_parser("power-off", help="the lab's power switch (used as a fencing command)")
    po.add_argument("--lab", required=True, type=Path, help="the repetition's folder")
    po.add_argument("node")
    po.set_defaults(fn=cmd_power_off)
    ps = sub.add_parser("power-status", help="the power switch's status (fence readiness)")
    ps.add_argument("--lab", required=True, type=Path, help="the repetition's folder")
    ps.add_argument("node")
    ps.set_defaults(fn=cmd_power_status)
    args = ap.parse_args(argv)
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        print("chaos: interrupted; the lab was torn down", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
