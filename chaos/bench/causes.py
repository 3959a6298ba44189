"""Where a "ZooKeeper minority" takeover's time went, per repetition.

The case partitions {active, its ZooKeeper server} from {standby, the other two
servers}. Which role that server had decides the floor:

* a follower: the majority's leader keeps running and expires the active's
  session T after it last heard of it;
* the leader: the majority must first notice the leader is gone (syncLimit x
  tickTime), elect a new one, and the new leader restarts every session's full
  timeout T, so the active's session ends only at detect + election + T.

This module reads what each part wrote down: the `partition` lab record (the
server's mode from `srvr` just before the fault), the ZooKeeper servers' logs
(LOOKING, elected, session expired) and the standby's failoverd log (kazoo's
connection lines, fence methods), and gives each as seconds after the fault.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.bench.common import summary
from chaos.records import read_records

_ZK_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
# (kind, what the server logged): ZooKeeper 3.8's INFO lines.
_ZK_KINDS = (
    ("looking", "QuorumPeer: LOOKING"),
    ("elected", "Leader: LEADING - LEADER ELECTION TOOK"),
    ("expired", "ZooKeeperServer: Expiring session"),
)


def zk_events(run_dir: Path, servers: list[str]) -> list[tuple[float, str, str]]:
    """(time, server, kind) of the ZooKeeper log lines that matter here, in order."""
    out = []
    for z in servers:
        try:
            text = (run_dir / z / "zookeeper.log").read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            kind = next((k for k, needle in _ZK_KINDS if needle in line), None)
            m = _ZK_LINE.match(line) if kind else None
            if m:
                # log4j writes local time, as datetime's naive timestamp() reads it.
                t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                out.append((t, z, str(kind)))
    return sorted(out)


def _after(start: float, t: float | None) -> float | None:
    return None if t is None else round(t - start, 3)


def causes(
    run_dir: Path,
    lab: list[dict[str, Any]],
    daemon: list[tuple[float, str, dict[str, Any]]],
    zk: list[tuple[float, str, str]],
    start: float,
    end: float,
) -> dict[str, Any] | None:
    """The phase times of one zk-minority repetition (seconds after the fault)."""
    part = next((r for r in lab if r.get("event") == "partition" and start <= r["t"] < end), None)
    if part is None or "minority_server" not in part:
        return None
    server, standby = part["minority_server"], part.get("standby")
    majority = [z for z in part["majority"] if z.startswith("zk")]
    zk_in = [(t, z, k) for t, z, k in zk if start <= t < end]
    mine = [(t, r) for t, n, r in daemon if n == standby and start <= t < end]

    def first_zk(kind: str, where: list[str]) -> float | None:
        return next((t for t, z, k in zk_in if k == kind and z in where), None)

    def first_log(pred: Any) -> float | None:
        return next((t for t, r in mine if pred(r)), None)

    contend = first_log(lambda r: r.get("event") == "role_changed" and r.get("role") == "fencing")
    dropped = first_log(lambda r: str(r.get("event", "")).startswith("Connection dropped"))
    reconnected = None
    if dropped is not None:
        reconnected = next(
            (
                t
                for t, r in mine
                if t > dropped and str(r.get("event", "")).startswith("Zookeeper connection est")
            ),
            None,
        )
    fence = [
        {
            "method": r.get("method"),
            "ok": r.get("ok"),
            "took_s": round(float(r.get("took_ms", 0)) / 1000, 3),
            "skipped": str(r.get("reason", "")).startswith("skipped"),
            "reason": str(r.get("reason", ""))[:160],
        }
        for t, r in mine
        if r.get("event") == "fence_method_finished" and contend is not None and t >= contend
    ]
    leader = part.get("minority_mode") == "leader"
    return {
        "minority_mode": part.get("minority_mode"),
        "minority_server": server,
        "standby_server": part.get("standby_server"),
        # Leader case: a majority server gave up on the old leader; follower case:
        # the minority server gave up on its leader (and closed the active's connection).
        "leader_lost_s": _after(start, first_zk("looking", majority if leader else [server])),
        "new_leader_s": _after(start, first_zk("elected", majority)) if leader else None,
        "session_expired_s": _after(start, first_zk("expired", majority)),
        "standby_disconnected_s": _after(start, dropped),
        "standby_reconnected_s": _after(start, reconnected),
        "standby_session_lost": first_log(lambda r: r.get("event") == "Session has expired")
        is not None,
        "contend_s": _after(start, contend),
        "fence": fence,
    }


# -- report --------------------------------------------------------------------------------

_COLUMNS = (
    ("leader_lost_s", "server gave up on its leader"),
    ("new_leader_s", "majority elected"),
    ("session_expired_s", "first session expired"),
    ("standby_disconnected_s", "standby disconnected"),
    ("standby_reconnected_s", "standby reconnected"),
    ("contend_s", "standby contends"),
)


def split_rows(reps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per role of the minority server: outage and phase medians."""
    out = []
    for mode in ("leader", "follower"):
        got = [r for r in reps if (r.get("causes") or {}).get("minority_mode") == mode]
        if not got:
            continue
        row: dict[str, Any] = {"mode": mode, **summary([r.get("outage") for r in got])}
        for key, _ in _COLUMNS:
            vals = [r["causes"][key] for r in got if r["causes"].get(key) is not None]
            row[key] = summary(vals).get("median")
        fences = [r["causes"]["fence"] for r in got if r["causes"]["fence"]]
        row["ssh_skipped"] = sum(
            1 for f in fences if any(m["skipped"] and m["method"] == "ssh" for m in f)
        )
        row["fence_s"] = summary([sum(m["took_s"] for m in f) for f in fences]).get("median")
        row["standby_sessions_lost"] = sum(1 for r in got if r["causes"]["standby_session_lost"])
        out.append(row)
    return out


def split_table(rows: list[dict[str, Any]]) -> str:
    def s(v: Any) -> str:
        return "–" if v is None else f"{v:.2f}"

    head = " | ".join(title for _, title in _COLUMNS)
    out = [
        "| ZooKeeper minority: the cut-off server was | n | outage median (p95) | "
        f"{head} | fencing (ssh skipped) | standby lost its own session |",
        "|---|---|---|" + "---|" * len(_COLUMNS) + "---|---|",
    ]
    for r in rows:
        cols = " | ".join(s(r.get(k)) for k, _ in _COLUMNS)
        out.append(
            f"| {r['mode']} | {r['n']} | {s(r.get('median'))} ({s(r.get('p95'))}) | {cols} "
            f"| {s(r.get('fence_s'))} ({r['ssh_skipped']}) | {r['standby_sessions_lost']} |"
        )
    return "\n".join(out)


def read_lab(run_dir: Path) -> list[dict[str, Any]]:
    return list(read_records(run_dir / "events" / "lab.jsonl"))
