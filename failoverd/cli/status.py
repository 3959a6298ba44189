"""`failoverctl status`: the cluster at a glance, for a person (a table) or a script
(`--json`, a contract) and for monitoring (exit 0 only when one
healthy active has a standby that could take over; 3 when ZooKeeper cannot say).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import click

from failoverd.cli.common import (
    CALL_TIMEOUT,
    Unreachable,
    command_config,
    operator_identity,
    zk_session,
)
from failoverd.cli.local import local_status
from failoverd.cli.table import WIDTH, clip, fit, member_table
from failoverd.cli.terminal import printable
from failoverd.config import Config
from failoverd.node.operator_audit import claimed, vouched_by, when
from failoverd.node.requests import FAILOVER, SWITCHOVER, Requests, check_requests
from failoverd.zk.coordinator import Coordinator
from failoverd.zk.errors import AccessRefused, CoordinationError
from failoverd.zk.znodes import Control, MemberStatus


def gather_status(config: Config, coord: Coordinator) -> dict[str, Any]:
    """The `status --json` object (a contract, keep it exact)."""
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
    ok, sentence = verdict(
        status, lock_unreadable=holder == "", requests=judge_requests(config, control, members)
    )
    status["verdict"] = f"{'healthy' if ok else 'degraded'}: {sentence}"
    status.update(operator_pending(control))
    return status


def operator_pending(control: Control) -> dict[str, Any]:
    """What operators left in `control` for later: a scheduled switchover
    (switchover --at) and a fence confirmation not yet used (confirm-fenced)."""
    sched, conf = control.scheduled, control.fence_confirmed
    return {
        "scheduled_switchover": None
        if sched is None
        else {
            "to": sched.to,
            "at": sched.at,
            "at_iso": when(sched.at),
            "requested_by": sched.requested_by,
            "reason": sched.reason,
        },
        "fence_confirmed": None
        if conf is None
        else {"node": conf.node, "epoch": conf.epoch, "by": conf.by, "at": conf.at},
    }


def _eligibility_fields(
    name: str, m: MemberStatus | None, members: dict[str, MemberStatus | None]
) -> dict[str, Any]:
    """What a member publishes about its own eligibility (failoverd.node.eligibility)."""
    if name not in members or m is None:
        why = (
            "it is not connected to ZooKeeper (failoverd stopped or cut off)"
            if name not in members
            else "its member znode is unreadable"
        )
        return {
            "eligible": False,
            "why": why,
            "version": "",
            "commit": "",
            "fence_ready": {},
            "fence_paths": {},
        }
    fence_ready = getattr(m, "fence_ready", None)
    return {
        "eligible": m.eligible,
        # An eligible member's `why` is "" unless it names a request it ignores.
        "why": m.why if m.eligible else (m.why or "not eligible (no reason given)"),
        "version": m.version,
        "commit": m.commit,  # "" before 0.2.0 or when its build could not say
        "fence_ready": dict(fence_ready) if isinstance(fence_ready, dict) else {},
        # Per peer, per method: "OK", "UNVERIFIED" or "FAIL" (fencing/base.py).
        "fence_paths": {peer: dict(r) for peer, r in m.fence_paths.items()},
    }


def judge_requests(
    config: Config, control: Control, members: dict[str, MemberStatus | None]
) -> Requests:
    """The pending requests as a node other than their target judges them
    (failoverd/node/requests.py), by this machine's clock: what the verdict shows,
    valid or ignored, with who wrote each and when."""
    life = config.switchover.timeout
    return check_requests(
        control,
        node="",  # no member's own view: every target is judged by its status
        configured=config.member_names,
        members=members,
        now_wall=time.time(),
        bounds={SWITCHOVER: life, FAILOVER: life + config.zookeeper.session_timeout},
    )


UNREADABLE_LOCK = "the lock znode is unreadable: who holds the lease is unknown"


def verdict(
    status: dict[str, Any], lock_unreadable: bool = False, requests: Requests | None = None
) -> tuple[bool, str]:
    """(healthy cluster?, one sentence). `lock_unreadable`: the lock znode exists but
    its content is garbage, so a session holds the lease but nobody can say whose
    (`lease_holder` is then null, as the contract has no other way to say it).
    `requests`: the operator's requests in `control`; each one, valid or ignored, is
    named at the end, since a pending one decides who may take over."""
    ok, sentence = _verdict(status, lock_unreadable)
    for c in requests.checks if requests is not None else ():
        sentence += f"; {c.sentence()}"
    return ok, sentence


def _verdict(status: dict[str, Any], lock_unreadable: bool) -> tuple[bool, str]:
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
    # Eligible means it would try; only a verified path (OK) says its fence would
    # work. A standby whose every method toward the active is UNVERIFIED or FAIL
    # may find out on the day it must take over, so say so now (exit 1).
    verified = [n for n in ready if _can_fence(rows[n], holder)]
    if not verified:
        unverified = "; ".join(f"{n}: {_fence_paths_text(rows[n], holder)}" for n in ready)
        return False, (
            f"no standby can verifiably fence the active {holder}, a failover may be "
            f"refused ({unverified}; run failoverctl fence-check {holder} on the standby)"
        )
    tail = f"; not eligible: {not_ready}" if not_ready else ""
    tail += "".join(
        f"; {n} cannot verifiably fence {holder}: {_fence_paths_text(rows[n], holder)}"
        for n in ready
        if n not in verified
    )
    # The other way round matters after a failover (the active becomes the standby):
    # named, not a warning, since today's failover does not depend on it.
    tail += "".join(
        f"; the active cannot verifiably fence {n}: {_fence_paths_text(h, n)}"
        for n in verified
        if (h.get("fence_paths") or {}).get(n) and not _can_fence(h, n)
    )
    return True, f"one healthy active ({holder}), eligible standby: {', '.join(ready)}{tail}"


def _can_fence(row: dict[str, Any], target: str) -> bool:
    """Whether a member published a verified (OK) fencing method toward `target`."""
    return "OK" in (row.get("fence_paths") or {}).get(target, {}).values()


def _fence_paths_text(row: dict[str, Any], target: str) -> str:
    paths = (row.get("fence_paths") or {}).get(target, {})
    if not paths:
        return f"no fence readiness toward {target} published (not probed yet, or older failoverd)"
    return ", ".join(f"{method} {result}" for method, result in paths.items())


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option(
    "--wide",
    is_flag=True,
    help="every column (epoch, connected, each fencing method, since) and every text in "
    "full, one line each; the default table fits 100 columns",
)
@click.option(
    "--local",
    is_flag=True,
    help="this node's own view from its /status endpoint; ZooKeeper is not consulted",
)
@click.option("--url", metavar="URL", help="with --local: the node's endpoint (http://HOST:PORT)")
@click.pass_context
def status_command(
    ctx: click.Context, as_json: bool, wide: bool, local: bool, url: str | None
) -> None:
    """Members, roles, health, epoch and lease holder. Exit 0 when healthy."""
    if local or url is not None:
        ctx.exit(local_status(ctx, url, as_json, local))
    config = command_config(ctx)
    credential, _ = operator_identity(ctx)
    with zk_session(config, credential) as coord:
        try:
            st = gather_status(config, coord)
            members = coord.read_members(CALL_TIMEOUT)
            recent = coord.read_history(5, CALL_TIMEOUT)
            control, _ = coord.read_control(CALL_TIMEOUT)
            requests = coord.operator_requests.read(CALL_TIMEOUT) if control.maintenance else {}
        except AccessRefused:
            raise  # an auth mistake (exit 2), not an unknown state
        except CoordinationError as e:
            # Connected, then lost it mid-read: the state is just as unknown.
            raise Unreachable(str(e)) from None
    ok = st["verdict"].startswith("healthy:")
    sentence = st["verdict"].split(": ", 1)[1]
    if as_json:
        click.echo(json.dumps(st, indent=2))  # a contract: exactly these keys
    else:
        by = _maintenance_by(control, requests)
        _print_table(st, members, recent, sentence, control, by, wide=wide)
    ctx.exit(0 if ok else 1)


def _maintenance_by(control: Control, requests: Mapping[str, Any]) -> str:
    """Who turned maintenance on: the request znode that lists the change (only
    that operator can write it), else the name in `control`, marked as a claim."""
    found = vouched_by("maintenance_on", control.maintenance_since, requests)
    return found[0] if found is not None else claimed(control.maintenance_by)


def _print_table(
    st: dict[str, Any],
    members: dict[str, MemberStatus | None],
    recent: list[Any],
    sentence: str,
    control: Control,
    maintenance_by: str,
    wide: bool = False,
) -> None:
    def say(text: str) -> None:
        for line in fit(text, wide):
            click.echo(line)

    active = st["active"]
    holder = st["lease_holder"] or ("(unreadable)" if sentence == UNREADABLE_LOCK else "-")
    maint = "ON" if st["maintenance"] else "off"
    epoch = active["epoch"] if active else "-"
    who = f"cluster {printable(st['cluster'])}   lease holder: {printable(holder)}"
    when = f"epoch: {epoch}   maintenance: {maint}"
    head = [f"{who}   {when}"] if wide or len(who) + len(when) + 3 <= WIDTH else [who, when]
    on = click.style("ON", fg="yellow", bold=True)
    for line in head:
        line = line if wide else clip(line, WIDTH)
        click.echo(line.replace("maintenance: ON", f"maintenance: {on}"))
    if control.maintenance and control.maintenance_by:
        # Who turned it on and why (failoverctl maintenance on --reason).
        why = control.maintenance_reason or "no reason given"
        since = f" since {control.maintenance_since}" if control.maintenance_since else ""
        say(printable(f"maintenance set by {maintenance_by}{since}: {why}"))
    _print_pending(st, wide)
    for line in member_table(st, members, wide):
        click.echo(line)
    for r in st["members"]:
        if not r["eligible"] and r["role"] != "active":
            say(printable(f"{r['node']} could not take over: {r['why']}"))
        elif r["why"] and r["role"] != "active":  # an active's why only says it is active
            say(printable(f"{r['node']}: {r['why']}"))
    for name, m in members.items():
        if m is not None and m.endpoint_error:
            # Whatever holds that port answers the load balancer's checks meanwhile.
            say(printable(f"{name} serves no HTTP endpoints: {m.endpoint_error}"))
    say(f"verdict: {printable(sentence)}")  # it quotes members' `why`
    if recent:
        click.echo("recent transitions:")
        for e in recent:
            line = f"  {history_line(e)}" if e else "  (unreadable entry)"
            click.echo(line if wide else clip(line, WIDTH))


def _print_pending(st: dict[str, Any], wide: bool) -> None:
    """A scheduled switchover and an unused fence confirmation, one sentence each."""

    def say(text: str) -> None:
        for line in fit(text, wide):
            click.echo(line)

    sched, conf = st.get("scheduled_switchover"), st.get("fence_confirmed")
    if sched:
        why = f": {sched['reason']}" if sched["reason"] else ""
        say(
            printable(
                f"switchover scheduled at {sched['at_iso']} to "
                f"{sched['to'] or 'any healthy standby'}, by {sched['requested_by']}{why} "
                "(failoverctl switchover --cancel withdraws it)"
            )
        )
    if conf:
        say(
            printable(
                f"fence confirmation pending: {conf['node']} (epoch {conf['epoch']}) confirmed "
                f"down by {conf['by']} at {conf['at']}: the next takeover skips fencing it once"
            )
        )


def history_line(e: Any, with_epoch: bool = False) -> str:
    epoch = f"epoch={'-' if e.epoch is None else e.epoch}  " if with_epoch else ""
    by = f"  (by {e.by})" if e.by else ""
    return printable(f"{e.time}  {e.node:<8} {e.event:<13} {epoch}{e.reason}{by}")
