"""The layout of `failoverctl status`: a members' table and sentences that fit a
100-column terminal (and a pager, a ticket, a chat message). Long cells are cut
with an ellipsis; sentences, which say why a node could not take over, are
wrapped, never cut. `--wide` lays out every column and every text in full, one
line each; `--json` has everything for scripts.

Every text from ZooKeeper passes through `printable` (terminal.py) first.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

from failoverd.cli.terminal import printable
from failoverd.zk.znodes import MemberStatus

WIDTH = 100
ELLIPSIS = "\u2026"
GAP = "  "


def clip(text: str, width: int) -> str:
    """`text` cut to `width` characters, the cut marked with an ellipsis."""
    return text if len(text) <= width else text[: max(0, width - 1)] + ELLIPSIS


def fit(text: str, wide: bool) -> list[str]:
    """A sentence as lines of at most WIDTH characters, broken between words and
    continued indented (nothing is cut: it names why a node could not take over);
    `wide`: one line, as it is."""
    if wide or len(text) <= WIDTH:
        return [text]
    return textwrap.wrap(
        text, WIDTH, subsequent_indent="    ", break_on_hyphens=False, break_long_words=True
    )


# Default columns: (header, the widest a cell may be). LAST TRANSITION takes
# what is left of WIDTH; the others' limits leave it at least 18 characters.
_NARROW = (
    ("NODE", 16),
    ("ROLE", 9),
    ("HEALTH", 9),
    ("ELIGIBLE", 8),
    ("FENCING", 16),
    ("VERSION", 15),
)


def member_table(
    st: dict[str, Any],
    members: dict[str, MemberStatus | None],
    wide: bool = False,
    now: datetime | None = None,
) -> list[str]:
    """The members' table: NODE ROLE HEALTH ELIGIBLE FENCING VERSION LAST TRANSITION
    within WIDTH columns, long cells cut with an ellipsis; `wide`: every column
    (EPOCH, CONNECTED, each fencing method, SINCE), nothing cut."""
    now = now or datetime.now(UTC)
    rows: list[tuple[str, ...]] = []
    for r in st["members"]:
        m = members.get(r["node"])
        health = "-" if not r["connected"] else "healthy" if r["healthy"] else "UNHEALTHY"
        eligible = "yes" if r["eligible"] else "-" if r["role"] == "active" else "NO"
        ready = r.get("fence_ready") or {}
        if wide:
            rows.append(
                (
                    printable(r["node"]),
                    printable(r["role"]),
                    health,
                    "-" if r["epoch"] is None else str(r["epoch"]),
                    "yes" if r["connected"] else "NO",
                    eligible,
                    fence_column(ready, r.get("fence_paths") or {}),
                    version_column(r["version"], r.get("commit", "")),
                    printable(m.since) if m else "-",
                    printable(m.reason) if m else "-",
                )
            )
        else:
            rows.append(
                (
                    printable(r["node"]),
                    printable(r["role"]),
                    health,
                    eligible,
                    fence_short(ready, r.get("fence_paths") or {}),
                    version_column(r["version"], r.get("commit", "")),
                    last_transition(m, now),
                )
            )
    if wide:
        header: tuple[str, ...] = (
            "NODE", "ROLE", "HEALTH", "EPOCH", "CONNECTED", "ELIGIBLE", "FENCING", "VERSION",
            "SINCE", "LAST TRANSITION",
        )  # fmt: skip
        limits = [len(max((row[i] for row in [header, *rows]), key=len)) for i in range(9)]
    else:
        header = (*(h for h, _ in _NARROW), "LAST TRANSITION")
        limits = [
            min(limit, max(len(row[i]) for row in [header, *rows]))
            for i, (_, limit) in enumerate(_NARROW)
        ]
    last = WIDTH - sum(limits) - len(GAP) * len(limits)
    lines = []
    for row in [header, *rows]:
        cells = [clip(c, w).ljust(w) for c, w in zip(row, limits, strict=False)]
        tail = row[-1] if wide else clip(row[-1], last)
        lines.append(GAP.join([*cells, tail]).rstrip())
    return lines


def version_column(version: str, commit: str) -> str:
    """`0.2.0 (3f2a9c1)`: in a rolling upgrade, which build each member runs."""
    text = f"{version} ({commit})" if version and commit else version
    return printable(text) or "-"


def last_transition(m: MemberStatus | None, now: datetime) -> str:
    """How long ago the member's role last changed, and why: `3h ago: demoting: ...`
    (the member's `since` is when its role and reason were last set)."""
    if m is None:
        return "-"
    return printable(f"{age(m.since, now)}: {m.reason}" if m.reason else age(m.since, now))


def age(since: str, now: datetime) -> str:
    try:
        then = datetime.fromisoformat(since)
    except ValueError:
        return since or "?"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


_RANK = {"OK": 0, "UNVERIFIED": 1, "FAIL": 2}


def _worst(paths: dict[str, dict[str, str]]) -> dict[str, str]:
    """Each method's worst result over the peers it fences (OK < UNVERIFIED < FAIL;
    anything else counts as FAIL)."""
    worst: dict[str, str] = {}
    for results in paths.values():
        for method, result in (results or {}).items():
            result = result if result in _RANK else "FAIL"
            if _RANK[result] >= _RANK[worst.get(method, "OK")]:
                worst[method] = result
    return worst


def fence_short(ready: dict[str, bool], paths: dict[str, dict[str, str]]) -> str:
    """`ok` when every fencing method's last probe was verified, else the ones that
    were not, failed ones first (`ssh:FAIL,command:UNVERIFIED`); `-` before the first
    probe. A member of an older release publishes no results, only ready or not
    (`ssh:DEAD`)."""
    worst = _worst(paths)
    if worst:  # the failed ones first: they survive the cut of a narrow column
        bad = sorted((k for k, v in worst.items() if v != "OK"), key=lambda k: -_RANK[worst[k]])
        return printable(",".join(f"{k}:{worst[k]}" for k in bad) if bad else "ok")
    if not ready:
        return "-"
    dead = [k for k, v in ready.items() if not v]
    return printable(",".join(f"{k}:DEAD" for k in dead) if dead else "ok")


def fence_column(ready: dict[str, bool], paths: dict[str, dict[str, str]]) -> str:
    """Fence readiness per method: `ssh:OK,command:UNVERIFIED`; `-` before the first
    probe. The method names are the member's own words, escaped like any text from
    ZooKeeper."""
    worst = _worst(paths)
    if worst:
        return printable(",".join(f"{k}:{v}" for k, v in worst.items()))
    return printable(",".join(f"{k}:{'ok' if v else 'DEAD'}" for k, v in ready.items()) or "-")
