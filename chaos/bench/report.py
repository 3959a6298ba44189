"""The benchmark's report: Markdown tables, the targets verdict and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.bench.common import summary

# The benchmark's targets: shown by the benchmark, never asserted by tests.
# Unplanned failovers are judged against T, the lab's session timeout: no takeover
# can come before the dead node's session expired.
CRASH_MARGIN = 0.5  # node crash with ssh fencing: median <= T + 0.5 s
HARD_MARGIN = 1.5  # power-off, isolated active, ZooKeeper minority: median <= T + 1.5 s
HARD_CASES = ("power-off", "isolate", "zk-minority")
SWITCHOVER_TARGET = 0.5  # targeted and untargeted
SWITCHOVER_CASES = ("switchover", "switchover-any")
# On the real mail node (--mail postfix) fencing stops and starting starts real
# services: a crash may take T + 1.0 s, and a switchover is judged from the command
# to the target's Postfix answering on the VIP (the step "served (client)",
# chaos/bench/phases.py), not by the client's longest gap.
POSTFIX_CRASH_MARGIN = 1.0
POSTFIX_SWITCHOVER_TARGET = 1.0
SERVED = "served (client)"  # chaos/bench/phases.py
RSS_TARGET_MB = 40.0
CPU_TARGET_PCT = 0.5

# Which keepalived row, measured in the same run, each failoverd row is compared
# with. keepalived has no quorum and no planned switchover: its takeover after the
# master died (3 x advert_int) is the baseline of every unplanned failover, and its
# clean handover (the parent killed: the VRRP child sends priority 0) that of the
# planned ones.
# A planned switchover is compared with keepalived's planned handover (stopped on the
# master) where that row was measured, else with its clean handover.
KEEPALIVED_BASELINE = {
    "crash": ("ka-crash",),
    "power-off": ("ka-crash",),
    "cut-zookeeper": ("ka-crash",),
    "isolate": ("ka-crash",),
    "zk-minority": ("ka-crash",),
    "kill-daemon": ("ka-kill-daemon",),
    "switchover": ("ka-switchover", "ka-kill-daemon"),
    "switchover-any": ("ka-switchover", "ka-kill-daemon"),
    "cut-peer-link": ("ka-cut-peer-link",),
}


def _s(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def case_rows(cases: list[dict[str, Any]], lab_t: float) -> list[dict[str, Any]]:
    rows = []
    for c in cases:
        outs = [r.get("outage") for r in c["reps"]]
        st = summary(outs)
        rows.append(
            {
                "key": c["key"],
                "system": c["system"],
                "title": c["title"],
                "kind": c.get("kind", ""),
                **st,
                "ratio": (
                    round(st["median"] / lab_t, 2)
                    if c["system"] == "failoverd" and "median" in st
                    else None
                ),
                "overlaps": c["overlaps"],
                "overlap_s": c["overlap_s"],
                "overlap_writes": c.get("overlap_writes", 0),
                "lost": c["lost"],
                "error": c.get("error"),
                "phases": _phase_medians(c["reps"]),
                "served": summary([(r.get("steps") or {}).get(SERVED) for r in c["reps"]]),
            }
        )
    _compare_with_keepalived(rows)
    return rows


def _compare_with_keepalived(rows: list[dict[str, Any]]) -> None:
    """Each failoverd row's median as a multiple of its keepalived row's median."""
    by = {r["key"]: r for r in rows}
    for r in rows:
        keys = KEEPALIVED_BASELINE.get(r["key"], ())
        base = next((by[k] for k in keys if k in by), None)
        r["vs_keepalived"] = None
        if r["system"] == "failoverd" and base and base.get("median") and "median" in r:
            r["vs_keepalived"] = {
                "case": base["key"],
                "ratio": round(r["median"] / base["median"], 2),
            }


def _phase_medians(reps: list[dict[str, Any]]) -> dict[str, float] | None:
    got = [r["phases"] for r in reps if r.get("phases")]
    if not got:
        return None
    return {k: summary([p[k] for p in got])["median"] for k in got[0]}


def cases_table(rows: list[dict[str, Any]], lab_t: float) -> str:
    out = [
        f"| case | system | n | outage median (s) | p95 | max | median / T (T = {lab_t:g} s) "
        "| vs keepalived (its row) | split brain: overlaps (s) | lost acked mail |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = f"{r['n']}" + (f" ({r['missing']} not measured)" if r.get("missing") else "")
        sb = "0" if not r["overlaps"] else f"**{r['overlaps']} ({r['overlap_s']:.1f} s)**"
        if r["overlaps"] and r["overlap_writes"]:
            sb += f", {r['overlap_writes']} writes"
        title = r["title"] + (f" — error: {r['error']}" if r.get("error") else "")
        out.append(
            f"| {title} | {r['system']} | {n} | {_s(r.get('median'))} | {_s(r.get('p95'))} "
            f"| {_s(r.get('max'))} | {_s(r['ratio'])} | {_vs(r)} | {sb} | {r['lost']} |"
        )
    return "\n".join(out)


def _vs(r: dict[str, Any]) -> str:
    vs = r.get("vs_keepalived")
    return "–" if not vs else f"{vs['ratio']:.2f} × ({vs['case']})"


def phases_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| failoverd case (medians, s) | fault → new active contends | fencing | "
        "starting VIP + service |",
        "|---|---|---|---|",
    ]
    for r in rows:
        p = r.get("phases")
        if p:
            out.append(
                f"| {r['title']} | {_s(p['to_contend_s'])} | {_s(p['fence_s'])} "
                f"| {_s(p['start_s'])} |"
            )
    return "\n".join(out)


def footprint_table(fp: dict[str, Any]) -> str:
    a, s, f = fp["active"], fp["standby"], fp["failover"]
    w = a["window_s"]
    out = [
        "| daemon | RSS (MB; own heap RssAnon) | CPU (% of one core) "
        "| ZooKeeper requests/s (daemon counter) "
        "| ZooKeeper packets/s in/out (server `cons`, incl. pings) |",
        "|---|---|---|---|---|",
    ]
    for name, x in (("active, idle", a), ("standby, idle", s)):
        out.append(
            f"| {name} ({w:.0f} s) | {x['rss_mb']:.1f} ({x.get('rss_anon_mb', 0):.1f}) "
            f"| {x['cpu_pct']:.2f} (+{x['children_cpu_pct']:.2f} children: health checks, "
            f"readiness probes; +{_s(x.get('probed_cpu_pct'))} in its sshd for the peer's probes) "
            f"| {_s(x['zk_requests_per_s'])} "
            f"| {_s(x['zk_packets_in_per_s'])} / {_s(x['zk_packets_out_per_s'])} |"
        )
    out.append(
        f"| standby during a failover (kill → active, {f['took_s']:.1f} s) "
        f"| {f['rss_peak_mb']:.1f} (peak) | {f['cpu_pct']:.2f} ({f['cpu_s']:.2f} s CPU, "
        f"+{f['children_cpu_s']:.2f} s fencer/resource children) | – | – |"
    )
    lab = fp.get("lab_daemons_after") or {}
    for name, x in sorted(lab.items()):
        out.append(
            f"| lab daemon {name} after the lab cases (ssh fencing: paramiko loaded) "
            f"| {x['rss_mb']:.1f} ({x['rss_anon_mb']:.1f}) | – | – | – |"
        )
    return "\n".join(out)


def scale_table(sc: dict[str, Any]) -> str:
    zk, ka = sc["zk_leader_kill"], sc["kill_all_actives"]
    pc = ka["per_cluster_s"]
    head = f"{sc['clusters']} clusters, {sc['daemons']} daemons, T = {sc['session_timeout']:g} s"
    out = [
        f"| {head} | all settled after (s) | failovers "
        "| per-cluster takeover median / p95 / max (s) |",
        "|---|---|---|---|",
        f"| start-up | {_s(sc['start_settle_s'], 1)} | – | – |",
        "| SIGKILL of the ZooKeeper leader (every session reconnects after the election) "
        f"| {_s(zk['settle_s'])} | {_kills(zk, sc['clusters'])} | – |",
        f"| SIGKILL of every active daemon at once | {_s(ka['all_settled_s'])} "
        f"| {ka['killed']} (all required) | {_s(pc.get('median'))} / {_s(pc.get('p95'))} "
        f"/ {_s(pc.get('max'))} |",
    ]
    fp = sc["footprint"]
    out.append("")
    out.append(
        f"Memory at this scale: daemon RSS median {fp['daemon_rss_mb_median']} MB "
        f"(own heap {fp.get('daemon_rss_anon_mb_median')} MB) "
        f"({fp['daemons_rss_mb_total']:.0f} MB for {fp['daemons']}); ZooKeeper servers "
        f"{', '.join(str(x) for x in fp['zookeeper_rss_mb_each'])} MB."
    )
    return "\n".join(out)


def _kills(zk: dict[str, Any], clusters: int) -> str:
    """Failovers per leader kill, with the CPU other work used meanwhile."""
    kills = zk.get("kills") or [zk]
    each = " + ".join(str(k["failovers"]) for k in kills)
    other = ", ".join(f"{k.get('other_cpu_pct', '?')} %" for k in kills)
    n = f"{len(kills)} kills" if len(kills) > 1 else "1 kill"
    return f"{each} of {clusters} ({n}; other work on the machine: {other} of a core)"


def targets(
    rows: list[dict[str, Any]],
    fp: dict[str, Any] | None,
    sc: dict[str, Any] | None,
    lab_t: float,
    mail: str = "toy",
) -> list[dict[str, Any]]:
    by = {r["key"]: r for r in rows}
    postfix = mail == "postfix"
    out: list[dict[str, Any]] = []

    def add(name: str, measured: str, met: bool | None) -> None:
        out.append({"target": name, "measured": measured, "met": met})

    def median_at_most(key: str, limit: float, name: str) -> None:
        if (r := by.get(key)) and "median" in r:
            measured = f"{r['median']:.3f} s (p95 {r['p95']:.3f} s, n {r['n']})"
            add(f"{name}: median ≤ {limit:g} s", measured, r["median"] <= limit)

    margin = POSTFIX_CRASH_MARGIN if postfix else CRASH_MARGIN
    median_at_most("crash", lab_t + margin, f"node crash with ssh fencing (T + {margin:g} s)")
    for key in HARD_CASES:
        if key in by:
            name = f"{by[key]['title']} (T + {HARD_MARGIN:g} s)"
            median_at_most(key, lab_t + HARD_MARGIN, name)
    for key in SWITCHOVER_CASES:
        if key not in by:
            continue
        if not postfix:
            median_at_most(key, SWITCHOVER_TARGET, by[key]["title"])
            continue
        served = by[key].get("served") or {}
        if "median" in served:
            limit = POSTFIX_SWITCHOVER_TARGET
            add(
                f"{by[key]['title']}, command → the target's Postfix answers: median ≤ {limit:g} s",
                f"{served['median']:.3f} s (p95 {served['p95']:.3f} s, n {served['n']})",
                served["median"] <= limit,
            )
    if fp:
        rss = max(fp["active"]["rss_mb"], fp["standby"]["rss_mb"])
        cpu = max(fp["active"]["cpu_pct"], fp["standby"]["cpu_pct"])
        add(
            f"idle daemon RSS < {RSS_TARGET_MB:g} MB, fence readiness included",
            f"{rss:.1f} MB",
            rss < RSS_TARGET_MB,
        )
        add(
            f"idle daemon CPU < {CPU_TARGET_PCT} % of one core, fence readiness included",
            f"{cpu:.2f} %",
            cpu < CPU_TARGET_PCT,
        )
    fo = [r for r in rows if r["system"] == "failoverd"]
    if fo:
        sb = sum(r["overlaps"] for r in fo)
        lost = sum(r["lost"] for r in fo)
        add(
            "0 overlaps and 0 lost messages in every failoverd row",
            f"{sb} overlaps, {lost} lost",
            sb == 0 and lost == 0,
        )
    if sc:
        n = sc["zk_leader_kill"]["failovers"]
        add(
            f"ZooKeeper leader kill at scale (T = {sc['session_timeout']:g} s): zero failovers",
            _kills(sc["zk_leader_kill"], sc["clusters"]),
            n == 0,
        )
    if (r := by.get("ka-cut-peer-link")) is not None:
        add(
            "keepalived, peer link cut: what happens without a quorum",
            f"{r['overlaps']} overlaps, {r['overlap_s']:.1f} s both serving",
            None,
        )
    return out


def mail_lines(out: Path) -> list[str]:
    """The real mail node's verdict of each lab run (mail.json): delivered, lost,
    duplicated, the store's e2fsck."""
    import json

    lines = []
    for lab in ("lab-failoverd", "lab-keepalived"):
        try:
            m = json.loads((out / lab / "mail.json").read_text())
        except (OSError, ValueError):
            continue
        lines.append(
            f"Mail ({lab}): {m.get('acked')} acknowledged, {m.get('delivered')} delivered, "
            f"{m.get('lost')} lost, {m.get('duplicated')} duplicated, "
            f"store e2fsck {'clean' if m.get('fsck_ok') else 'ERRORS'}."
        )
    return [*lines, ""] if lines else []


def targets_table(ts: list[dict[str, Any]]) -> str:
    out = ["| target | measured | |", "|---|---|---|"]
    for t in ts:
        mark = "shown" if t["met"] is None else ("met" if t["met"] else "**missed**")
        out.append(f"| {t['target']} | {t['measured']} | {mark} |")
    return "\n".join(out)


def plot(rows: list[dict[str, Any]], cases: list[dict[str, Any]], lab_t: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['system']}: {r['title']}" for r in rows]
    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(14, 1.2 + 0.5 * len(rows)), gridspec_kw={"width_ratios": [3, 1]}, sharey=True
    )
    for y, c in enumerate(cases):
        xs = [r["outage"] for r in c["reps"] if r.get("outage") is not None]
        color = "tab:blue" if c["system"] == "failoverd" else "tab:orange"
        ax.plot(xs, [y] * len(xs), "o", color=color, alpha=0.5, ms=5)
        if xs:
            med = sorted(xs)[len(xs) // 2]
            ax.plot([med, med], [y - 0.3, y + 0.3], color="black", lw=2)
    ax.axvline(lab_t, ls="--", color="gray")
    ax.axvline(lab_t + 1, ls=":", color="red")
    ax.text(lab_t, len(rows) - 0.4, " T", color="gray")
    ax.text(lab_t + 1, len(rows) - 0.4, " T+1 s target", color="red")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("client-visible outage per repetition (s); bar = median")
    ax.grid(axis="x", alpha=0.3)
    bx.barh(
        range(len(rows)),
        [r["overlap_s"] for r in rows],
        color=["red" if r["overlap_s"] else "green" for r in rows],
    )
    bx.set_xlabel("two nodes serving (s, total)")
    bx.grid(axis="x", alpha=0.3)
    fig.suptitle("failoverd vs keepalived in the chaos lab")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
