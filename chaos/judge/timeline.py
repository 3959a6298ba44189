"""The timeline picture of one run: who served, the faults, and every delivery.

One lane per mail node (its service intervals, labelled with the epoch; a lone
store write is a tick; a thin purple bar where it held the VIP), one lane for
the client (each delivery a dot: green acknowledged, red failed), fault spans
shaded, power-offs marked. The title
carries the verdict, so the PNG alone tells an operator how the run went; a
span where two nodes served at once is shaded red.
"""

from __future__ import annotations

from pathlib import Path

from chaos.judge.checker import Verdict, overlaps, vip_intervals
from chaos.judge.history import History


def draw(h: History, verdict: Verdict, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [i.start for i in verdict.intervals] + [d.t_start for d in h.deliveries]
    times += [e.t for e in h.lab]
    t0 = min(times, default=0.0)
    end = h.observed_end - t0
    lanes = [*h.nodes, "client"]
    y = {name: len(lanes) - k for k, name in enumerate(lanes)}

    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.9 * len(lanes)))
    for f in h.faults():
        heal = (f.heal if f.heal is not None else h.observed_end) - t0
        ax.axvspan(f.start - t0, heal, color="orange", alpha=0.18, lw=0)
        ax.text(f.start - t0, len(lanes) + 0.55, f.name, fontsize=8, va="bottom")
    for e in h.lab:
        if e.event in ("power_off", "power_on") and e.node in y:
            marker = "v" if e.event == "power_off" else "^"
            ax.plot(e.t - t0, y[e.node] + 0.38, marker, color="black", ms=7)
    for a, b in overlaps(verdict.intervals):  # split brain: the span both served, in red
        lo, hi = max(a.start, b.start) - t0, min(a.end, b.end) - t0
        ax.axvspan(lo, max(hi, lo + 0.05), color="red", alpha=0.3, lw=0)
    for i in verdict.intervals:
        if i.node not in y:
            continue
        if i.proof == "write":
            ax.plot([i.start - t0] * 2, [y[i.node] - 0.3, y[i.node] + 0.3], color="red", lw=1)
            continue
        ax.broken_barh([(i.start - t0, i.end - i.start)], (y[i.node] - 0.3, 0.6), color="tab:blue")
        ax.text(i.start - t0, y[i.node], f" e{i.epoch}", va="center", fontsize=7, color="white")
    for i in vip_intervals(h):  # who held the VIP (polls): a thin purple bar under the lane
        if i.node in y and i.end > i.start:
            ax.broken_barh(
                [(i.start - t0, i.end - i.start)], (y[i.node] - 0.42, 0.08), color="tab:purple"
            )
    ok = [d.t_end - t0 for d in h.deliveries if d.ok]
    bad = [d.t_end - t0 for d in h.deliveries if not d.ok]
    ax.plot(ok, [y["client"] + 0.12] * len(ok), "|", color="green", ms=8, label="acknowledged")
    ax.plot(bad, [y["client"] - 0.12] * len(bad), "|", color="red", ms=8, label="failed")

    verdict_text = (
        "PASSED"
        if verdict.passed
        else "FAILED: " + ", ".join(sorted({v.rule for v in verdict.violations}))
    )
    ax.set_title(f"{title} — {verdict_text}", color="black" if verdict.passed else "darkred")
    ax.set_yticks([y[n] for n in lanes], lanes)
    ax.set_ylim(0.4, len(lanes) + 1)
    ax.set_xlim(0, max(end, 1.0))
    ax.set_xlabel("seconds")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
