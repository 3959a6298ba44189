"""Where one takeover's time went, step by step, from the daemons' own log lines.

The coarse split (chaos/bench/slices.py: fault -> contends -> fenced -> active) says
*that* fencing or starting is slow; this says *which part*: for one repetition,
seconds spent in

* detect: from the fault until the new active no longer sees a lease holder
  (its first `decided` that is a priority delay or `contend`); for a planned
  switchover, from the old active's release until then;
* wait: a priority delay, until it contends;
* contend: until the lock is won (`role_changed` fencing);
* fence: each method's `took_ms` (`fence_method_finished`); for ssh, from the
  fenced node's own fence-self log (chaos/lab/nodes.py keeps it as
  `<node>/fence-self.log`): connect (method start -> fence-self started), each
  resource's stop (`took_ms` of its line), verify (fence-self finished -> the
  method's end: ssh exit and the port probes);
* start: each resource's `took_ms` (`resource_started`), and the whole start
  (`promoting` -> `active`);
* served: from the fault (the switchover command) to the first message the
  client got acknowledged by the new active's service.

A planned switchover adds the old active's side: request seen (`decided` demote),
each resource's stop, demoted (its last stop, after which it gives the lease back,
or its `role_changed` standby if that comes first).

Every duration is either a monotonic `took_ms` of the process that did the work
or a difference of two log lines' times on this one machine. Phases a repetition
does not have are absent, not zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from chaos.bench.common import summary
from chaos.lab.nodes import FENCE_LOG
from chaos.records import json_objects

Event = tuple[float, str, dict[str, Any]]  # (wall time, node, log record)
SERVED = "served (client)"  # fault (or command) -> the new active's first acknowledgement



def parse_log(lines: Iterable[str], node: str) -> list[Event]:
    """(time, node, record) of every JSON log line with an ISO timestamp."""
    out = []
    for r in json_objects(lines):
        ts = r.get("timestamp")
        if isinstance(ts, str):
            try:
                out.append((datetime.fromisoformat(ts).timestamp(), node, r))
            except ValueError:
                continue
    return sorted(out, key=lambda e: e[0])


def read_log(path: Path, node: str) -> list[Event]:
    try:
        return parse_log(path.read_text(errors="replace").splitlines(), node)
    except OSError:
        return []


def fence_self_events(run_dir: Path, nodes: Sequence[str]) -> list[Event]:
    """fence-self's lines on every node, in time order."""
    out: list[Event] = []
    for n in nodes:
        out += read_log(run_dir / n / FENCE_LOG, n)
    return sorted(out, key=lambda e: e[0])


# -- resource names -> what they are ---------------------------------------------------


def resource_labels(config: dict[str, Any]) -> dict[str, str]:
    """A node config's resources by the name failoverd logs -> a short label
    (mount, VIP, Postfix, Dovecot, service): failoverd names resources by their
    place in the file ("command resources[2]"), which says nothing in a table."""
    out = {}
    for i, r in enumerate(config.get("resources") or []):
        kind = r.get("type")
        if kind == "vip":
            label, name = "VIP", f"vip {r.get('address')} on {r.get('interface')}"
        elif kind == "ocf":
            agent = str(r.get("agent", ""))
            label = "mount" if agent.endswith(":Filesystem") else agent
            name = f"ocf {agent} resources[{i}]"
        else:
            words = [str(w) for w in r.get("start") or []]
            label = next(
                (w.capitalize() for w in words if w in ("postfix", "dovecot")),
                "service" if any("toy_smtp" in w for w in words) else f"{kind} {i}",
            )
            name = f"{kind} resources[{i}]" if kind != "systemd" else ""
        if name:
            out[name] = label
    return out


def node_labels(run_dir: Path, nodes: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for n in nodes:
        try:
            out |= resource_labels(yaml.safe_load((run_dir / n / "failoverd.yaml").read_text()))
        except (OSError, yaml.YAMLError, AttributeError):
            continue
    return out


# -- one repetition -----------------------------------------------------------------------


def _ms(r: dict[str, Any]) -> float:
    return round(float(r.get("took_ms") or 0) / 1000, 3)


Found = tuple[float | None, dict[str, Any]]


def _first(events: Sequence[Event], pred: Any, lo: float, hi: float) -> Found:
    return next(((t, r) for t, _n, r in events if lo <= t <= hi and pred(r)), (None, {}))


def _last(events: Sequence[Event], pred: Any, lo: float, hi: float) -> Found:
    found = [(t, r) for t, _n, r in events if lo <= t <= hi and pred(r)]
    return found[-1] if found else (None, {})


def _role(role: str) -> Any:
    return lambda r: r.get("event") == "role_changed" and r.get("role") == role


def _add(steps: dict[str, float], key: str, value: float | None) -> None:
    if value is not None:
        steps[key] = round(steps.get(key, 0.0) + value, 3)


def takeover_steps(
    events: Sequence[Event],
    start: float,
    end: float,
    *,
    fence_self: Sequence[Event] = (),
    labels: dict[str, str] | None = None,
    old_active: str | None = None,
    planned: bool = False,
    served_at: float | None = None,
) -> dict[str, float] | None:
    """The steps of the first takeover in [start, end) (seconds, in order), or None
    when no node became active in it. `served_at`: when the client's first message
    to the new active was acknowledged."""
    labels = labels or {}

    def label(r: dict[str, Any]) -> str:
        name = str(r.get("resource", "?"))
        return labels.get(name, name)

    t_active, _ = _first(events, _role("active"), start, end)
    if t_active is None:
        return None
    new = next(n for t, n, r in events if t == t_active and _role("active")(r))
    mine = [e for e in events if e[1] == new]
    t_promoting, _ = _last(mine, _role("promoting"), start, t_active)
    t_fencing, _ = _last(mine, _role("fencing"), start, t_promoting or t_active)
    if t_promoting is None or t_fencing is None:
        return None
    contend = lambda r: r.get("event") == "decided" and r.get("act") == "contend"  # noqa: E731
    t_contend, _ = _last(mine, contend, start, t_fencing)
    steps: dict[str, float] = {}
    seen_from = start
    if planned and old_active is not None:
        old = [e for e in events if e[1] == old_active]
        demote = lambda r: r.get("event") == "decided" and r.get("act") == "demote"  # noqa: E731
        t_demote, _ = _first(old, demote, start, t_fencing)
        if t_demote is not None:
            _add(steps, "request seen", t_demote - start)
            # The lease goes right after the last stop, and the old active may log
            # its own `standby` only after the target already contends: the
            # demotion ends with whichever of the two came first.
            last = t_contend if t_contend is not None else t_fencing
            released = None
            for _t, _n, r in old:
                if t_demote <= _t <= last and r.get("event") == "resource_stopped":
                    _add(steps, f"demote: stop {label(r)}", _ms(r))
                    released = _t
                elif t_demote <= _t <= last and _role("standby")(r):
                    released = _t
                    break
            if released is not None:
                _add(steps, "demote", released - t_demote)
                seen_from = released
    if t_contend is not None:
        free = lambda r: r.get("event") == "decided" and (  # noqa: E731
            r.get("act") == "contend" or str(r.get("reason", "")).startswith("priority delay")
        )
        t_seen, _ = _first(mine, free, seen_from, t_contend)
        t_seen = t_seen if t_seen is not None else t_contend
        _add(steps, "detect", t_seen - seen_from)
        if t_contend - t_seen >= 0.0005:
            _add(steps, "wait (priority delay)", t_contend - t_seen)
        _add(steps, "contend", t_fencing - t_contend)
    for t, _n, r in mine:
        if not (t_fencing <= t <= t_promoting and r.get("event") == "fence_method_finished"):
            continue
        method = str(r.get("method"))
        _add(steps, f"fence: {method}" + ("" if r.get("ok") else " (failed)"), _ms(r))
        if method == "ssh" and r.get("ok"):
            began = t - _ms(r)
            target = [e for e in fence_self if e[1] == r.get("target")]
            fs_start, _ = _first(target, lambda x: x.get("event") == "fence_self_started", began, t)
            fs_end, _ = _last(target, lambda x: x.get("event") == "fence_self_finished", began, t)
            if fs_start is not None and fs_end is not None:
                _add(steps, "fence: ssh connect", fs_start - began)
                for _t, _m, x in target:
                    if fs_start <= _t <= fs_end and x.get("resource") and "took_ms" in x:
                        _add(steps, f"fence: stop {label(x)}", _ms(x))
                _add(steps, "fence: ssh verify", t - fs_end)
    _add(steps, "fence total", t_promoting - t_fencing)
    for t, _n, r in mine:
        if t_promoting <= t <= t_active and r.get("event") == "resource_started":
            _add(steps, f"start: {label(r)}", _ms(r))
    _add(steps, "start total", t_active - t_promoting)
    if served_at is not None:
        _add(steps, SERVED, served_at - start)
    return steps


def first_served(
    service: Iterable[tuple[float, str, str]],
    acks: Iterable[tuple[float, float]],
    node: str,
    start: float,
    end: float,
) -> float | None:
    """When the client's first message to `node`'s service after `start` was acknowledged.

    `service`: (time, node, service_up|service_down); `acks`: (sent, acknowledged) of
    every acknowledged message. A message sent after `node`'s service came up (which is
    recorded before the service listens) went to it: the old active had stopped."""
    ups = [t for t, n, ev in service if n == node and ev == "service_up" and start <= t < end]
    if not ups:
        return None
    return next((done for sent, done in sorted(acks) if sent >= ups[0] and done < end), None)


# -- the report -----------------------------------------------------------------------


def phase_rows(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case, per step: n, median, p95 of the repetitions that had the step."""
    out = []
    for c in cases:
        got = [r["steps"] for r in c.get("reps", []) if r.get("steps")]
        if not got:
            continue
        order: list[str] = []
        for s in got:
            order += [k for k in s if k not in order]
        for k in order:
            st = summary([s[k] for s in got if k in s])
            out.append({"case": c["title"], "system": c["system"], "step": k, **st})
    return out


def phase_table(rows: list[dict[str, Any]]) -> str:
    def s(v: Any) -> str:
        return "–" if v is None else f"{v:.3f}"

    out = [
        "| case | step (s) | n | median | p95 | max |",
        "|---|---|---|---|---|---|",
    ]
    last = None
    for r in rows:
        case = r["case"] if r["case"] != last else ""
        last = r["case"]
        out.append(
            f"| {case} | {r['step']} | {r['n']} | {s(r.get('median'))} | {s(r.get('p95'))} "
            f"| {s(r.get('max'))} |"
        )
    return "\n".join(out)
