"""`failoverctl`: the operator's view and controls. Talks to ZooKeeper
only, with the node's own config file.

Exit codes: 0 success (status: one healthy active and a standby that
could take over), 1 refused/failed/degraded, 2 usage or config error, 3 ZooKeeper
unreachable (state unknown; the Nagios convention for "unknown").
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

import click

from failoverd.cli.backup import backup_command, restore_command
from failoverd.cli.common import (
    CALL_TIMEOUT,
    DEFAULT_CONFIG,
    Refused,
    Unreachable,
    command_config,
    json_option,
    log_to_stderr,
    operator_identity,
    zk_session,
)
from failoverd.cli.identity import request_znode
from failoverd.cli.prompt import ask
from failoverd.cli.status import gather_status, history_line, status_command
from failoverd.cli.terminal import printable
from failoverd.cli.when import parse_at
from failoverd.config import Config
from failoverd.fencing.lease_wait import PublishedWatchdogs
from failoverd.node.confirmation import applies, lease_wait, refusal
from failoverd.node.decision import plan_fencing
from failoverd.node.operator_audit import when as when_text
from failoverd.node.switchover import pick_target
from failoverd.zk import acl as zk_acl
from failoverd.zk.coordinator import Coordinator
from failoverd.zk.errors import ZnodeMissing
from failoverd.zk.znodes import (
    UNREADABLE_CONTROL,
    FenceConfirmation,
    OperatorRequest,
    Request,
    now_iso,
)


def _config_after_subcommand(
    ctx: click.Context, _param: click.Parameter, value: str | None
) -> None:
    if value is not None:
        ctx.obj = value


# `failoverctl status -c FILE` as well as `failoverctl -c FILE status`.
_SUB_CONFIG = click.Option(
    ["-c", "--config"],
    default=None,
    expose_value=False,
    callback=_config_after_subcommand,
    help="the node's failoverd config or an operator config (also accepted before the command)",
)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """`--version`, the daemon's words: the commit is looked up only when asked for."""
    if value and not ctx.resilient_parsing:
        from failoverd.release import describe

        click.echo(describe())
        ctx.exit(0)


class _Commands(click.Group):
    """Every subcommand accepts -c/--config after its name too."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any("-c" in getattr(p, "opts", ()) for p in cmd.params):
            cmd.params.append(_SUB_CONFIG)
        super().add_command(cmd, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and the commit it was built from, and exit.",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="FAILOVERD_CONFIG",
    default=None,
    help="the node's failoverd config, or an operator config (env FAILOVERD_CONFIG; "
    "default: $XDG_CONFIG_HOME/failoverd/failoverctl.yaml or "
    f"~/.config/failoverd/failoverctl.yaml if it exists, else {DEFAULT_CONFIG})",
)
@click.option(
    "--credential",
    "credential_path",
    envvar="FAILOVERCTL_CREDENTIAL",
    default=None,
    help="your own ZooKeeper operator credential (user:password, mode 0600); "
    "default: an operator config's operator.credential, else the node's "
    "zookeeper.auth, with SUDO_USER/USER as your name",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, credential_path: str | None) -> None:
    """Inspect and steer a failoverd cluster."""
    log_to_stderr()
    ctx.obj = config_path
    ctx.meta["credential_path"] = credential_path


# `status` lives in status.py, `backup` and `restore` in backup.py.
cli.add_command(status_command)
cli.add_command(backup_command)
cli.add_command(restore_command)


@cli.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The audit trail, newest first."""
    config = command_config(ctx)
    credential, _ = operator_identity(ctx)
    with zk_session(config, credential) as coord:
        entries = coord.read_history(limit, CALL_TIMEOUT)
    if as_json:
        click.echo(json.dumps([asdict(e) if e else None for e in entries], indent=2))
        return
    for e in entries:
        if e is None:
            click.echo("(unreadable entry)")
        else:
            click.echo(history_line(e, with_epoch=True))


@cli.command()
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option("--reason", default="", help="why (stored with your name; goes into history)")
@click.pass_context
def maintenance(ctx: click.Context, state: str, reason: str) -> None:
    """Freeze (on) or resume (off) automatic transitions."""
    config = command_config(ctx)
    credential, who = operator_identity(ctx)
    with zk_session(config, credential) as coord:
        control, version = coord.read_control(CALL_TIMEOUT)
        since = now_iso()
        new = replace(  # keeps what else control holds: requests, a schedule, a confirmation
            control,
            maintenance=state == "on",
            maintenance_by=who,
            maintenance_reason=reason,
            maintenance_since=since,
        )
        _vouch(coord, credential, f"maintenance_{state}", since, who)
        coord.write_control(new, version, CALL_TIMEOUT)
    click.echo(
        f"maintenance {state}"
        + (": no automatic failover until 'maintenance off'" if state == "on" else "")
    )


def _wait_for_active(
    coord: Coordinator, config: Config, old: str | None, target: str | None, timeout: float
) -> tuple[str, int] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder, _, _ = coord.read_lock(CALL_TIMEOUT)
        if holder and holder != old and (target is None or holder == target):
            m = coord.read_members(CALL_TIMEOUT).get(holder)
            if m is not None and m.role == "active" and m.epoch is not None:
                return holder, m.epoch
        time.sleep(0.02)
    return None


def _vouch(coord: Coordinator, credential: str | None, kind: str, ref: str, by: str) -> None:
    """Add the change about to be written into `control` to our request znode,
    *before* control: the daemon that records it reads the request znodes when it
    sees control change, and takes the operator's name from the znode's path."""
    if not coord.operator_requests.add(
        request_znode(credential), OperatorRequest(kind, ref, by, now_iso()), CALL_TIMEOUT
    ):
        if credential is not None:
            click.echo(
                f"note: no request znode for {request_znode(credential)} (not in "
                "zookeeper.operators, or the nodes run an older release): history will "
                "record your name as claimed",
                err=True,
            )


def _post_request(
    coord: Coordinator,
    kind: str,
    to: str | None,
    timeout: float,
    by: str,
    reason: str,
    credential: str | None,
) -> Request:
    control, version = coord.read_control(CALL_TIMEOUT)
    req = Request(str(uuid.uuid4()), to, timeout, by, now_iso(), reason)
    _vouch(coord, credential, kind, req.id, by)
    new = replace(
        control,
        switchover=req if kind == "switchover" else None,
        failover=req if kind == "failover" else None,
    )
    coord.write_control(new, version, CALL_TIMEOUT)
    return req


def _withdraw(coord: Coordinator, req: Request) -> None:
    control, version = coord.read_control(CALL_TIMEOUT)
    if req in (control.switchover, control.failover):
        coord.write_control(control.without_requests(), version, CALL_TIMEOUT)


_YES = click.option("--yes", "-y", is_flag=True, help="do not ask on a terminal")
_DRY_RUN = click.option(
    "--dry-run",
    is_flag=True,
    help="say what would happen from the cluster's state now, write nothing "
    "(exit 0: it would proceed, 1: it would be refused)",
)


@cli.command()
@click.option(
    "--to", "to", metavar="NODE", help="the standby to hand over to (default: any healthy one)"
)
@click.option("--reason", default="", help="why (goes into history with your name)")
@click.option(
    "--at",
    "at_text",
    metavar="TIME",
    help="schedule it: ISO 8601 with offset (2026-12-07T02:00:00+01:00) or HH:MM "
    "(the next such local time); the daemons carry it out then",
)
@click.option("--cancel", is_flag=True, help="withdraw the scheduled switchover")
@_YES
@_DRY_RUN
@click.pass_context
def switchover(
    ctx: click.Context,
    to: str | None,
    reason: str,
    at_text: str | None,
    cancel: bool,
    yes: bool,
    dry_run: bool,
) -> None:
    """Planned handover: the active stops cleanly, the target takes over without fencing."""
    if cancel and (to or at_text or dry_run):
        raise click.UsageError("--cancel takes no --to, --at or --dry-run")
    at = None
    if at_text is not None:
        try:
            at = parse_at(at_text, datetime.now().astimezone())
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--at") from None
    config = command_config(ctx)
    credential, who = operator_identity(ctx)
    with zk_session(config, credential) as coord:
        if cancel:
            return _cancel_scheduled(coord, credential, who, yes)
        st = gather_status(config, coord)
        old = st["lease_holder"]
        to = _switchover_target(st, coord, to, scheduled=at is not None)
        if dry_run:
            return _dry_run_switchover(st, old, to, at)
        if at is not None:
            return _schedule(coord, config, credential, who, to, reason, at, yes)
        ask(f"Switch over from {old} to {to}? Its services stop there and start on {to}.", yes)
        timeout = config.switchover.timeout
        started = time.monotonic()
        req = _post_request(coord, "switchover", to, timeout, who, reason, credential)
        got = _wait_for_active(coord, config, old, to, timeout + 1.0)
        took = time.monotonic() - started
        if got is None:
            _withdraw(coord, req)
            raise Refused(
                f"switchover timed out: {to or 'no standby'} did not take over within "
                f"{timeout:g}s; {old} resumes"
            )
        click.echo(printable(f"switchover {old} -> {got[0]} done in {took:.2f}s (epoch {got[1]})"))


def _switchover_target(
    st: dict[str, Any], coord: Coordinator, to: str | None, scheduled: bool
) -> str | None:
    """The standby a switchover hands over to, or Refused with the reason. A
    scheduled one without --to names nobody: whoever is best at its time."""
    rows = {r["node"]: r for r in st["members"]}
    old = st["lease_holder"]
    if st["maintenance"]:
        raise Refused("refused: maintenance mode is on (failoverctl maintenance off first)")
    if old is None or rows.get(old, {}).get("role") != "active":
        raise Refused(
            "refused: no active node to switch over from (use failover --to NODE --force)"
        )
    if to is not None:
        if to not in rows:
            raise Refused(f"refused: unknown node {to!r} (members: {', '.join(rows)})")
        if to == old:
            raise Refused(f"refused: {to} is already active")
        r = rows[to]
        if not r["connected"]:
            raise Refused(f"refused: {to} is not connected to ZooKeeper")
        if not r["healthy"]:
            raise Refused(f"refused: {to} fails its health checks")
        if r["role"] != "standby":
            raise Refused(f"refused: {to} is {r['role']}, not standby")
        return to
    if scheduled:
        return None
    # Name the best standby in the request: it then contends the moment the
    # lease is free instead of every standby waiting out its priority delay.
    to = pick_target(rows, coord.read_members(CALL_TIMEOUT), old)
    if to is None:
        raise Refused("refused: no healthy, connected standby to hand over to")
    return to


def _dry_run_switchover(
    st: dict[str, Any], old: str | None, to: str | None, at: float | None
) -> None:
    rows = {r["node"]: r for r in st["members"]}
    when = f" at {when_text(at)}" if at is not None else ""
    target = to or "the best healthy standby at that time"
    lines = [f"dry run: switchover {old} -> {target}{when} would proceed"]
    lines.append(f"  {old} stops its services and hands over cleanly: no fencing needed")
    if to is not None:
        ready = rows[to].get("fence_ready") or {}
        lines.append(
            f"  {to}'s fence readiness (if {old} fails to stop cleanly, {to} fences it): "
            + (", ".join(f"{k}: {'ready' if v else 'DEAD'}" for k, v in ready.items()) or "unknown")
        )
    lines.append("nothing was written")
    for line in lines:
        click.echo(printable(line))


def _schedule(
    coord: Coordinator,
    config: Config,
    credential: str | None,
    who: str,
    to: str | None,
    reason: str,
    at: float,
    yes: bool,
) -> None:
    control, version = coord.read_control(CALL_TIMEOUT)
    if control.scheduled is not None:
        raise Refused(
            f"refused: a switchover is already scheduled at {when_text(control.scheduled.at)} "
            "(failoverctl switchover --cancel first)"
        )
    target = to or "any healthy standby"
    ask(f"Schedule a switchover to {target} at {when_text(at)}?", yes)
    req = Request(str(uuid.uuid4()), to, config.switchover.timeout, who, now_iso(), reason, at=at)
    _vouch(coord, credential, "switchover_scheduled", req.id, who)
    coord.write_control(replace(control, scheduled=req), version, CALL_TIMEOUT)
    click.echo(
        printable(
            f"switchover to {target} scheduled at {when_text(at)} "
            f"({datetime.fromtimestamp(at).astimezone().isoformat(timespec='minutes')} local); "
            "failoverctl switchover --cancel withdraws it"
        )
    )


def _cancel_scheduled(coord: Coordinator, credential: str | None, who: str, yes: bool) -> None:
    control, version = coord.read_control(CALL_TIMEOUT)
    req = control.scheduled
    if req is None:
        raise Refused("refused: no switchover is scheduled")
    target = req.to or "any healthy standby"
    ask(f"Withdraw the switchover to {target} at {when_text(req.at)}?", yes)
    _vouch(coord, credential, "switchover_cancelled", req.id, who)
    coord.write_control(replace(control, scheduled=None), version, CALL_TIMEOUT)
    click.echo(printable(f"scheduled switchover at {when_text(req.at)} withdrawn"))


@cli.command()
@click.option("--to", "to", required=True, metavar="NODE", help="the node to promote")
@click.option(
    "--force", is_flag=True, help="required (but for --dry-run): confirms the active is gone"
)
@click.option("--reason", default="", help="why (goes into history with your name)")
@_YES
@_DRY_RUN
@click.pass_context
def failover(
    ctx: click.Context, to: str, force: bool, reason: str, yes: bool, dry_run: bool
) -> None:
    """Promote NODE when the active is gone. Fencing still runs (confirm-fenced
    alone lets it skip one fence)."""
    if not force and not dry_run:
        raise click.UsageError(
            "failover needs --force (it promotes a node without a clean handover)"
        )
    config = command_config(ctx)
    credential, who = operator_identity(ctx)
    with zk_session(config, credential) as coord:
        st = gather_status(config, coord)
        rows = {r["node"]: r for r in st["members"]}
        if to not in rows:
            raise Refused(f"refused: unknown node {to!r} (members: {', '.join(rows)})")
        if not rows[to]["connected"]:
            raise Refused(f"refused: {to} is not connected to ZooKeeper")
        holder = st["lease_holder"]
        if holder is not None:
            raise Refused(
                f"refused: {holder} holds the lease; use 'switchover --to {to}' for a live active"
            )
        if dry_run:
            return _dry_run_failover(config, coord, rows, to)
        ask(f"Promote {to}? It fences the previous active first.", yes)
        timeout = config.switchover.timeout + config.zookeeper.session_timeout
        started = time.monotonic()
        req = _post_request(coord, "failover", to, timeout, who, reason, credential)
        got = _wait_for_active(coord, config, None, to, timeout + 30.0)
        if got is None:
            _withdraw(coord, req)
            raise Refused(
                f"failover to {to} did not complete "
                "(see failoverctl history: fencing may have failed)"
            )
        click.echo(
            printable(
                f"failover to {to} done in {time.monotonic() - started:.2f}s (epoch {got[1]})"
            )
        )


def _dry_run_failover(
    config: Config, coord: Coordinator, rows: dict[str, dict[str, Any]], to: str
) -> None:
    """Whom `to` would fence, whether it looks able to, and what would stop it."""
    crumb, readable, _ = coord.read_breadcrumb(CALL_TIMEOUT)
    control, _ = coord.read_control(CALL_TIMEOUT)
    connected = {n for n, r in rows.items() if r["connected"]}
    peers = tuple(n for n in config.member_names if n != to)
    plan = plan_fencing(crumb, readable, to, peers)
    lines = [f"dry run: failover to {to}", f"  fencing: {plan.reason}"]
    problems = []
    if not plan.possible:
        problems.append(plan.reason)
    if not rows[to]["healthy"]:
        problems.append(f"{to} fails its health checks")
    ready = rows[to].get("fence_ready") or {}
    for name in plan.targets:
        verdict = applies(control.fence_confirmed, name, crumb, readable, connected)
        if verdict.ok:
            lines.append(f"  {name}: not fenced, {verdict.why} (confirm-fenced; used once)")
            continue
        methods = ", ".join(f"{k}: {'ready' if v else 'DEAD'}" for k, v in ready.items())
        lines.append(f"  {name}: fenced by {to}; its fence readiness: {methods or 'unknown'}")
        if ready and not any(ready.values()):
            problems.append(
                f"no fencing method of {to} works now, so fencing {name} would fail "
                f"(failoverctl fence-check {name}; or confirm-fenced {name} if it is down)"
            )
    lines.append("nothing was written")
    for line in lines:
        click.echo(printable(line))
    if problems:
        raise Refused("would be refused: " + "; ".join(problems))
    click.echo(f"it would proceed: {to} would become active")


@cli.command("fence-check")
@click.argument("node")
@click.option(
    "--json", "as_json", is_flag=True, help="print a list of {method, result, detail, elapsed_ms}"
)
@click.pass_context
def fence_check(ctx: click.Context, node: str, as_json: bool) -> None:
    """Dry-run every fencing method against NODE; fences nothing.

    Each method is OK (its check ran and passed), UNVERIFIED (nothing could be
    checked without fencing) or FAIL. Exit 0 when at least one is OK, 1 when none
    is verified, 3 when only ZooKeeper could have told (lease-wait)."""
    config = command_config(ctx)
    peer = config.peer(node)
    if peer is None:
        raise click.BadParameter(f"{node!r} is not a peer in {config.path}", param_hint="NODE")
    from failoverd.fencing.base import OK, FenceTarget
    from failoverd.fencing.chain import build_fence_chain
    from failoverd.fencing.readiness import method_names

    published, unreachable = _published_watchdogs(ctx, config)
    outcomes = build_fence_chain(config, published).check(FenceTarget(peer.name, peer.address))
    # The names status and the metrics use: "command", "command-2", ...
    methods = method_names(config.fencing)
    if as_json:
        rows = [
            {
                "method": method,
                "result": o.result,
                "detail": o.reason,
                "elapsed_ms": round(o.took * 1000),
            }
            for method, o in zip(methods, outcomes, strict=True)
        ]
        click.echo(json.dumps(rows, indent=2))
    else:
        colour = {"OK": "green", "UNVERIFIED": "yellow", "FAIL": "red"}
        for method, o in zip(methods, outcomes, strict=True):
            mark = click.style(f"{o.result:<10}", fg=colour[o.result])
            click.echo(f"{mark} {method:<10} {printable(o.reason)} ({o.took * 1000:.0f} ms)")
    if any(o.result == OK for o in outcomes):
        return
    if unreachable is not None:
        raise Unreachable(f"no fencing method against {node} is verified, and {unreachable}")
    failed = sum(1 for o in outcomes if not o.ok)
    raise Refused(
        f"no fencing method against {node} is verified ({failed} failed, "
        f"{len(outcomes) - failed} unverified): a takeover from it may be refused"
    )


def _published_watchdogs(
    ctx: click.Context, config: Config
) -> tuple[PublishedWatchdogs | None, str | None]:
    """What the members published about their watchdog devices, which only a
    lease-wait method needs (None, and nothing read, without one), and why it
    could not be read (ZooKeeper unreachable: lease-wait stays UNVERIFIED)."""
    if not any(f.type == "lease-wait" for f in config.fencing):
        return None, None
    credential, _ = operator_identity(ctx)
    published = PublishedWatchdogs()
    try:
        with zk_session(config, credential) as coord:
            published.saw(coord.read_members(CALL_TIMEOUT))
    except (Unreachable, Refused) as e:
        return None, f"what it published about its watchdog could not be read: {e.message}"
    return published, None


@cli.command("confirm-fenced")
@click.argument("node")
@click.option("--reason", required=True, help="what you checked (goes into history with your name)")
@_YES
@click.pass_context
def confirm_fenced(ctx: click.Context, node: str, reason: str, yes: bool) -> None:
    """Say NODE is down and its services stopped: the next takeover skips fencing
    it, once. Only for a node you have checked by hand (its site, its power)."""
    if not reason.strip():
        raise click.UsageError("--reason must say what you checked")
    config = command_config(ctx)
    credential, who = operator_identity(ctx)
    with zk_session(config, credential) as coord:
        holder, _, _ = coord.read_lock(CALL_TIMEOUT)
        crumb, readable, _ = coord.read_breadcrumb(CALL_TIMEOUT)
        members = coord.read_members(CALL_TIMEOUT)
        why = refusal(node, config.member_names, crumb, readable, holder, set(members))
        if why is not None:
            raise Refused(f"refused: {why}")
        assert crumb is not None  # refusal() says why otherwise
        zk = config.zookeeper
        wait = lease_wait(zk.session_timeout, zk.lease_margin)
        ask(
            f"Confirm that {node} is DOWN and its services are stopped? The next takeover "
            f"will not fence it. If {node} still runs them, two nodes serve at once.",
            yes,
        )
        control, version = coord.read_control(CALL_TIMEOUT)
        if control is UNREADABLE_CONTROL:
            raise Refused("refused: the control znode is unreadable (see failoverctl status)")
        conf = FenceConfirmation(str(uuid.uuid4()), node, crumb.epoch, who, now_iso(), reason)
        _vouch(coord, credential, "fence_confirmed", conf.id, who)
        coord.write_control(replace(control, fence_confirmed=conf), version, CALL_TIMEOUT)
    click.echo(
        printable(
            f"recorded: the next takeover skips fencing {node} once (its term at epoch "
            f"{crumb.epoch}), after waiting out its lease ({wait:g}s)"
        )
    )


@cli.command()
@click.argument("user")
@click.option(
    "--password-file",
    type=click.File("r"),
    default="-",
    help="read the password from this file (default: stdin)",
)
@json_option
def digest(user: str, password_file: Any, as_json: bool) -> None:
    """Print USER's ZooKeeper digest id for zookeeper.operators (no password is stored)."""
    password = password_file.readline().rstrip("\n")
    if not password or ":" in user:
        raise click.UsageError("need a user without ':' and a non-empty password")
    digest_id = zk_acl.digest_id(user, password)
    click.echo(json.dumps({"user": user, "id": digest_id}) if as_json else digest_id)


@cli.command("fix-acl")
@click.pass_context
def fix_acl(ctx: click.Context) -> None:
    """Set the cluster's ACLs to what this config expects (after adding an operator),
    and close the znodes above it (zookeeper.root) to anyone not named in them.
    Needs the nodes' own credential; the daemons refuse to run until ACLs match."""
    config = command_config(ctx)
    want = zk_acl.expected(config)
    if want is None:
        raise Refused("refused: zookeeper.auth is not set, so there is no ACL to apply")
    credential, _ = operator_identity(ctx)  # an operator's is refused by ZooKeeper (no ADMIN)
    with zk_session(config, credential) as coord:
        # Outermost first: the root stays reachable while its own parents close.
        for path in reversed(zk_acl.ancestors(coord.root)):
            current = coord.read_acl(path, CALL_TIMEOUT)
            if current is None:
                continue
            closed = zk_acl.closed_root_acl(config, current)
            coord.set_acl(path, closed, CALL_TIMEOUT)
            click.echo(f"{path}: {zk_acl.describe(closed)}")
        for name in zk_acl.CHECKED:
            path = f"{coord.root}/{name}" if name else coord.root
            try:
                coord.set_acl(path, want[name], CALL_TIMEOUT)
            except ZnodeMissing:
                continue
            click.echo(f"{path}: {zk_acl.describe(want[name])}")


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="failoverctl", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
