"""`failoverctl`: the operator's view and controls (DESIGN.md §6). Talks to ZooKeeper
only, with the node's own config file.

Exit codes (DESIGN.md §9): 0 success (status: one healthy active and a standby that
could take over), 1 refused/failed/degraded, 2 usage or config error, 3 ZooKeeper
unreachable (state unknown; the Nagios convention for "unknown").
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Any

import click
import structlog
from kazoo.exceptions import KazooException, NoNodeError

from failoverd import __version__
from failoverd.cli.backup import register as register_backup_commands
from failoverd.cli.identity import operator_name, read_operator_credential
from failoverd.cli.terminal import printable
from failoverd.config import Config, ConfigError, load_config
from failoverd.node.switchover import pick_target
from failoverd.zk import acl as zk_acl
from failoverd.zk.coordinator import CoordinationError, Coordinator
from failoverd.zk.znodes import Control, MemberStatus, Request, now_iso

CONNECT_TIMEOUT = 3.0
CALL_TIMEOUT = 3.0


class Refused(click.ClickException):
    """The operation was refused or failed: exit 1 with the reason."""

    exit_code = 1


class Unreachable(click.ClickException):
    """ZooKeeper cannot be reached, so the cluster's state is unknown: exit 3, one line."""

    exit_code = 3

    def show(self, file: Any = None) -> None:
        click.echo(f"failoverctl: UNKNOWN: {self.message}", err=True)


DEFAULT_CONFIG = "/etc/failoverd/failoverd.yaml"


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
    help="the node's failoverd config file (also accepted before the command)",
)


class _Commands(click.Group):
    """Every subcommand accepts -c/--config after its name too."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any("-c" in getattr(p, "opts", ()) for p in cmd.params):
            cmd.params.append(_SUB_CONFIG)
        super().add_command(cmd, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "--version", prog_name="failoverctl", message="%(prog)s %(version)s"
)
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="FAILOVERD_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="the node's failoverd config file (env FAILOVERD_CONFIG)",
)
@click.option(
    "--credential",
    "credential_path",
    envvar="FAILOVERCTL_CREDENTIAL",
    default=None,
    help="your own ZooKeeper operator credential (user:password, mode 0600); "
    "default: the node's zookeeper.auth, with SUDO_USER/USER as your name",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str, credential_path: str | None) -> None:
    """Inspect and steer a failoverd cluster."""
    log_to_stderr()
    ctx.obj = config_path
    ctx.meta["credential_path"] = credential_path


def _config(ctx: click.Context) -> Config:
    try:
        return load_config(ctx.obj)
    except ConfigError as e:
        for line in e.problems:
            click.echo(line, err=True)
        ctx.exit(2)
        raise AssertionError("unreachable") from None


def _operator(ctx: click.Context) -> tuple[str | None, str]:
    """(operator credential or None, the name history records for this operator)."""
    path = ctx.meta.get("credential_path")
    if path is None:
        return None, operator_name(None)
    try:
        credential = read_operator_credential(path)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    return credential, operator_name(credential)


@contextmanager
def _zk(config: Config, credential: str | None = None) -> Iterator[Coordinator]:
    quiet_kazoo()
    coord = Coordinator(config, credential=credential)
    try:
        coord.start(timeout=CONNECT_TIMEOUT)
    except CoordinationError as e:
        raise Unreachable(str(e)) from None
    try:
        yield coord
    except CoordinationError as e:
        raise Refused(str(e)) from None
    finally:
        coord.close()


def log_to_stderr() -> None:
    """failoverd's own warnings met while reading (e.g. lock_unreadable) go to stderr,
    one line each: stdout carries only the answer, which scripts parse (`--json`).
    structlog's default would print them to stdout."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def quiet_kazoo() -> None:
    """kazoo logs every failed connection attempt; the CLI says it once, in one line."""
    kazoo_log = logging.getLogger("kazoo")
    kazoo_log.addHandler(logging.NullHandler())
    kazoo_log.propagate = False


def gather_status(config: Config, coord: Coordinator) -> dict[str, Any]:
    """The `status --json` object (DESIGN.md §9: a contract, keep it exact)."""
    holder, _, _ = coord.read_lock(CALL_TIMEOUT)
    crumb, readable, _ = coord.read_breadcrumb(CALL_TIMEOUT)
    control, _ = coord.read_control(CALL_TIMEOUT)
    members = coord.read_members(CALL_TIMEOUT)
    names = list(config.member_names) + sorted(set(members) - set(config.member_names))
    rows = []
    for name in names:
        m = members.get(name)
        rows.append(
            {
                "node": name,
                "role": m.role if m else "stopped",
                "healthy": bool(m and m.healthy),
                "epoch": m.epoch if m else None,
                "connected": name in members,
                **_eligibility_fields(name, m, members),
            }
        )
    active = None
    if readable and crumb is not None and crumb.node is not None:
        active = {
            "node": crumb.node,
            "epoch": crumb.epoch,
            "since": crumb.since,
            "clean": crumb.clean,
        }
    status = {
        "cluster": config.cluster,
        "lease_holder": holder if holder else None,
        "active": active,
        "maintenance": control.maintenance,
        "members": rows,
    }
    ok, sentence = verdict(status, lock_unreadable=holder == "")
    status["verdict"] = f"{'healthy' if ok else 'degraded'}: {sentence}"
    return status


def _eligibility_fields(
    name: str, m: MemberStatus | None, members: dict[str, MemberStatus | None]
) -> dict[str, Any]:
    """What a member publishes about its own eligibility (failoverd.node.eligibility)."""
    if name not in members:
        why = "it is not connected to ZooKeeper (failoverd stopped or cut off)"
        return {"eligible": False, "why": why, "version": "", "fence_ready": {}}
    if m is None:
        why = "its member znode is unreadable"
        return {"eligible": False, "why": why, "version": "", "fence_ready": {}}
    fence_ready = getattr(m, "fence_ready", None)
    return {
        "eligible": m.eligible,
        "why": "" if m.eligible else (m.why or "not eligible (no reason given)"),
        "version": m.version,
        "fence_ready": dict(fence_ready) if isinstance(fence_ready, dict) else {},
    }


UNREADABLE_LOCK = "the lock znode is unreadable: who holds the lease is unknown"


def verdict(status: dict[str, Any], lock_unreadable: bool = False) -> tuple[bool, str]:
    """(healthy cluster?, one sentence). `lock_unreadable`: the lock znode exists but
    its content is garbage, so a session holds the lease but nobody can say whose
    (`lease_holder` is then null, as the contract has no other way to say it)."""
    holder = status["lease_holder"]
    rows = {r["node"]: r for r in status["members"]}
    if lock_unreadable:
        return False, UNREADABLE_LOCK
    if status["maintenance"]:
        return False, "maintenance mode is on: no automatic failover"
    if holder is None:
        return False, "no node holds the lease: no active"
    h = rows.get(holder)
    if h is None or h["role"] != "active":
        return False, f"{holder} holds the lease but is not (yet) active"
    if not h["healthy"]:
        return False, f"the active {holder} fails its health checks"
    others = [r for r in rows.values() if r["node"] != holder]
    ready = [r["node"] for r in others if r["eligible"] and r["role"] == "standby"]
    not_ready = "; ".join(f"{r['node']}: {r['why']}" for r in others if r["node"] not in ready)
    if not ready:
        return False, (
            f"no standby could take over, failover would not be possible ({not_ready or 'none'})"
        )
    tail = f"; not eligible: {not_ready}" if not_ready else ""
    return True, f"one healthy active ({holder}), eligible standby: {', '.join(ready)}{tail}"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Members, roles, health, epoch and lease holder. Exit 0 when healthy."""
    config = _config(ctx)
    credential, _ = _operator(ctx)
    with _zk(config, credential) as coord:
        try:
            st = gather_status(config, coord)
            members = coord.read_members(CALL_TIMEOUT)
            recent = coord.read_history(5, CALL_TIMEOUT)
            control, _ = coord.read_control(CALL_TIMEOUT)
        except CoordinationError as e:
            # Connected, then lost it mid-read: the state is just as unknown.
            raise Unreachable(str(e)) from None
    ok = st["verdict"].startswith("healthy:")
    sentence = st["verdict"].split(": ", 1)[1]
    if as_json:
        click.echo(json.dumps(st, indent=2))  # DESIGN.md §9: exactly these keys
    else:
        _print_table(st, members, recent, sentence, control)
    ctx.exit(0 if ok else 1)


def _print_table(
    st: dict[str, Any],
    members: dict[str, MemberStatus | None],
    recent: list[Any],
    sentence: str,
    control: Control,
) -> None:
    active = st["active"]
    holder = st["lease_holder"] or ("(unreadable)" if sentence == UNREADABLE_LOCK else "-")
    maint = click.style("ON", fg="yellow", bold=True) if st["maintenance"] else "off"
    click.echo(
        f"cluster {st['cluster']}   lease holder: {printable(holder)}   "
        f"epoch: {active['epoch'] if active else '-'}   maintenance: {maint}"
    )
    if control.maintenance and control.maintenance_by:
        # Who turned it on and why (failoverctl maintenance on --reason).
        why = control.maintenance_reason or "no reason given"
        since = f" since {control.maintenance_since}" if control.maintenance_since else ""
        click.echo(printable(f"maintenance set by {control.maintenance_by}{since}: {why}"))
    header = (
        "NODE", "ROLE", "HEALTH", "EPOCH", "CONNECTED", "ELIGIBLE", "FENCING", "VERSION", "SINCE",
        "LAST TRANSITION",
    )  # fmt: skip
    rows = [header]
    for r in st["members"]:
        m = members.get(r["node"])
        rows.append(
            (
                r["node"],
                r["role"],
                "-" if not r["connected"] else "healthy" if r["healthy"] else "UNHEALTHY",
                "-" if r["epoch"] is None else str(r["epoch"]),
                "yes" if r["connected"] else "NO",
                "yes" if r["eligible"] else "-" if r["role"] == "active" else "NO",
                _fence_column(r.get("fence_ready") or {}),
                printable(r["version"]) or "-",
                printable(m.since) if m else "-",
                printable(m.reason) if m else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        click.echo(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )
    for r in st["members"]:
        if not r["eligible"] and r["role"] != "active":
            click.echo(printable(f"{r['node']} could not take over: {r['why']}"))
    click.echo(f"verdict: {sentence}")
    if recent:
        click.echo("recent transitions:")
        for e in recent:
            click.echo(f"  {_history_line(e)}" if e else "  (unreadable entry)")


def _fence_column(ready: dict[str, bool]) -> str:
    """Fence readiness per method: `ssh:ok,command:DEAD`; `-` before the first probe."""
    return ",".join(f"{k}:{'ok' if v else 'DEAD'}" for k, v in ready.items()) or "-"


@cli.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The audit trail, newest first."""
    config = _config(ctx)
    credential, _ = _operator(ctx)
    with _zk(config, credential) as coord:
        entries = coord.read_history(limit, CALL_TIMEOUT)
    if as_json:
        click.echo(json.dumps([asdict(e) if e else None for e in entries], indent=2))
        return
    for e in entries:
        if e is None:
            click.echo("(unreadable entry)")
        else:
            click.echo(_history_line(e, with_epoch=True))


def _history_line(e: Any, with_epoch: bool = False) -> str:
    epoch = f"epoch={'-' if e.epoch is None else e.epoch}  " if with_epoch else ""
    by = f"  (by {e.by})" if e.by else ""
    return printable(f"{e.time}  {e.node:<8} {e.event:<13} {epoch}{e.reason}{by}")


@cli.command()
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option("--reason", default="", help="why (stored with your name; goes into history)")
@click.pass_context
def maintenance(ctx: click.Context, state: str, reason: str) -> None:
    """Freeze (on) or resume (off) automatic transitions."""
    config = _config(ctx)
    credential, who = _operator(ctx)
    with _zk(config, credential) as coord:
        control, version = coord.read_control(CALL_TIMEOUT)
        new = Control(
            state == "on",
            control.switchover,
            control.failover,
            maintenance_by=who,
            maintenance_reason=reason,
            maintenance_since=now_iso(),
        )
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


def _post_request(
    coord: Coordinator, kind: str, to: str | None, timeout: float, by: str, reason: str
) -> Request:
    control, version = coord.read_control(CALL_TIMEOUT)
    req = Request(str(uuid.uuid4()), to, timeout, by, now_iso(), reason)
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


@cli.command()
@click.option(
    "--to", "to", metavar="NODE", help="the standby to hand over to (default: any healthy one)"
)
@click.option("--reason", default="", help="why (goes into history with your name)")
@click.pass_context
def switchover(ctx: click.Context, to: str | None, reason: str) -> None:
    """Planned handover: the active stops cleanly, the target takes over without fencing."""
    config = _config(ctx)
    credential, who = _operator(ctx)
    with _zk(config, credential) as coord:
        st = gather_status(config, coord)
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
        else:
            # Name the best standby in the request: it then contends the moment the
            # lease is free instead of every standby waiting out its priority delay.
            to = pick_target(rows, coord.read_members(CALL_TIMEOUT), old)
            if to is None:
                raise Refused("refused: no healthy, connected standby to hand over to")
        timeout = config.switchover.timeout
        started = time.monotonic()
        req = _post_request(coord, "switchover", to, timeout, who, reason)
        got = _wait_for_active(coord, config, old, to, timeout + 1.0)
        took = time.monotonic() - started
        if got is None:
            _withdraw(coord, req)
            raise Refused(
                f"switchover timed out: {to or 'no standby'} did not take over within "
                f"{timeout:g}s; {old} resumes"
            )
        click.echo(f"switchover {old} -> {got[0]} done in {took:.2f}s (epoch {got[1]})")


@cli.command()
@click.option("--to", "to", required=True, metavar="NODE", help="the node to promote")
@click.option("--force", is_flag=True, help="required: confirms the active is gone")
@click.option("--reason", default="", help="why (goes into history with your name)")
@click.pass_context
def failover(ctx: click.Context, to: str, force: bool, reason: str) -> None:
    """Promote NODE when the active is gone. Fencing still runs."""
    if not force:
        raise click.UsageError(
            "failover needs --force (it promotes a node without a clean handover)"
        )
    config = _config(ctx)
    credential, who = _operator(ctx)
    with _zk(config, credential) as coord:
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
        timeout = config.switchover.timeout + config.zookeeper.session_timeout
        started = time.monotonic()
        req = _post_request(coord, "failover", to, timeout, who, reason)
        got = _wait_for_active(coord, config, None, to, timeout + 30.0)
        if got is None:
            _withdraw(coord, req)
            raise Refused(
                f"failover to {to} did not complete "
                "(see failoverctl history: fencing may have failed)"
            )
        click.echo(f"failover to {to} done in {time.monotonic() - started:.2f}s (epoch {got[1]})")


@cli.command("fence-check")
@click.argument("node")
@click.pass_context
def fence_check(ctx: click.Context, node: str) -> None:
    """Dry-run every fencing method against NODE; fences nothing."""
    config = _config(ctx)
    peer = config.peer(node)
    if peer is None:
        raise click.BadParameter(f"{node!r} is not a peer in {config.path}", param_hint="NODE")
    from failoverd.fencing.base import FenceTarget
    from failoverd.fencing.chain import build_fence_chain

    outcomes = build_fence_chain(config).check(FenceTarget(peer.name, peer.address))
    for o in outcomes:
        mark = click.style("OK  ", fg="green") if o.ok else click.style("FAIL", fg="red")
        click.echo(f"{mark} {o.method:<10} {printable(o.reason)} ({o.took * 1000:.0f} ms)")
    if not any(o.ok for o in outcomes):
        raise Refused(
            f"no fencing method would work against {node}: a takeover from it would be refused"
        )


@cli.command()
@click.argument("user")
@click.option(
    "--password-file",
    type=click.File("r"),
    default="-",
    help="read the password from this file (default: stdin)",
)
def digest(user: str, password_file: Any) -> None:
    """Print USER's ZooKeeper digest id for zookeeper.operators (no password is stored)."""
    password = password_file.readline().rstrip("\n")
    if not password or ":" in user:
        raise click.UsageError("need a user without ':' and a non-empty password")
    click.echo(zk_acl.digest_id(user, password))


@cli.command("fix-acl")
@click.pass_context
def fix_acl(ctx: click.Context) -> None:
    """Set the cluster's ACLs to what this config expects (after adding an operator).
    Needs the nodes' own credential; the daemons refuse to run until ACLs match."""
    config = _config(ctx)
    want = zk_acl.expected(config)
    if want is None:
        raise Refused("refused: zookeeper.auth is not set, so there is no ACL to apply")
    credential, _ = _operator(ctx)  # an operator's is refused by ZooKeeper (no ADMIN)
    with _zk(config, credential) as coord:
        for name in zk_acl.CHECKED:
            path = f"{coord.root}/{name}" if name else coord.root
            try:
                coord.client.set_acls(path, want[name])
            except NoNodeError:
                continue
            except KazooException as e:
                raise Refused(f"setting the ACL of {path}: {type(e).__name__}") from None
            click.echo(f"{path}: {zk_acl.describe(want[name])}")


# `backup` and `restore` live in failoverd/cli/backup.py.
register_backup_commands(cli)


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="failoverctl", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
