"""`failoverd`: run the daemon, check a config, or fence this node (ssh forced command).

    failoverd -c FILE                 run the daemon
    failoverd -c FILE --check         validate the config: exit 0 valid, 2 invalid
    failoverd -c FILE fence-self [--epoch N] [--dry-run] [--from-ssh]
    failoverd --version

Exit codes: 0 success, 1 the operation failed, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failoverd.config import Config

DEFAULT_CONFIG = "/etc/failoverd/failoverd.yaml"


class _Version(argparse.Action):
    """`--version`: the commit is looked up only when asked for (it may run git)."""

    def __init__(self, option_strings: list[str], dest: str, **kw: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print version and commit, exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        from failoverd.release import describe

        print(describe())
        parser.exit(0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="failoverd", description="Active-passive failover for mail servers."
    )
    p.add_argument(
        "-c",
        "--config",
        default=os.environ.get("FAILOVERD_CONFIG", DEFAULT_CONFIG),
        help=f"config file (default: $FAILOVERD_CONFIG or {DEFAULT_CONFIG})",
    )
    p.add_argument(
        "--check", action="store_true", help="validate the config and exit (0 valid, 2 invalid)"
    )
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command")
    fs = sub.add_parser("fence-self", help="stop this node's resources and write a fence marker")
    fs.add_argument("--epoch", type=int, help="the epoch being fenced (every epoch up to it)")
    fs.add_argument(
        "--dry-run", action="store_true", help="check that fencing would work; change nothing"
    )
    fs.add_argument(
        "--from-ssh",
        action="store_true",
        help="take --epoch/--dry-run from SSH_ORIGINAL_COMMAND "
        "(the forced command of authorized_keys)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from failoverd.config import ConfigError, load_config

    if args.check:
        from failoverd.checks.report import check_report

        code, text = check_report(args.config)
        print(text, file=sys.stdout if code == 0 else sys.stderr)
        return code
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return 2

    if args.command == "fence-self":
        # JSON lines without structlog: this process starts for every fence and
        # every readiness probe, and structlog is a quarter of its start-up.
        from failoverd.observe.fastlog import use_plain_json

        use_plain_json(config.log.level, config.node.name, config.cluster)
        return _fence_self(config, args)

    from failoverd.checks.ocf import load_checked_config

    try:  # again, with the OCF agents asked: an agent --check would refuse, so does the daemon
        config = load_checked_config(args.config)
    except ConfigError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return 2

    from failoverd.observe.log import configure_logging

    configure_logging(config.log, config.node.name, config.cluster)

    from failoverd.checks.preflight import preflight
    from failoverd.node.daemon import Daemon

    problems, _ = preflight(config)  # refuse to start on what --check calls an error
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    _log_host_checks(config)

    # A metrics.listen that cannot be bound is no reason to exit: the daemon logs
    # endpoint_bind_failed and keeps trying (failoverd.observe.endpoints).
    return Daemon(config).run()


def _log_host_checks(config: Config) -> None:
    """What --check says about the programs, units and interfaces this node would use,
    in the journal at every start: an operator who never ran --check still sees
    `journalctl -p err` name a missing fencer before the takeover that needs it.
    Unlike preflight's access rules, these do not stop the daemon: a missing
    power-fencing script must not also take away a standby's ssh fencing."""
    import structlog

    from failoverd.checks.host import host_checks

    log = structlog.get_logger("failoverd.checks.host")
    for f in host_checks(config):
        if f.severity == "error":
            log.error("preflight_failed", at=f.at, problem=f.message)
        else:
            log.warning("preflight_warning", at=f.at, problem=f.message)


def _fence_self(config: object, args: argparse.Namespace) -> int:
    from failoverd.fencing.fence_self import parse_ssh_original_command, run_fence_self

    epoch, dry_run = args.epoch, args.dry_run
    if args.from_ssh:
        try:
            epoch, dry_run = parse_ssh_original_command(os.environ.get("SSH_ORIGINAL_COMMAND"))
        except ValueError as e:
            print(f"failoverd fence-self: refused: {e}", file=sys.stderr)
            return 2
    if epoch is None and not dry_run:
        print("failoverd fence-self: --epoch N or --dry-run is required", file=sys.stderr)
        return 2
    return run_fence_self(config, epoch, dry_run)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
