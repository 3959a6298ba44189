"""Judging delivery, not acknowledgement (`--mail postfix`).

At the end of a run, while the lab still runs:
* `collect` waits (bounded) for the final active's Postfix queue to drain, then
  reads every mailbox over IMAP through the VIP (so through the final active's
  Dovecot, from the client's host) into `mailboxes.json`;
after the teardown (every process dead, so every mount gone):
* `fsck_store` releases the loop devices and runs `e2fsck -f -n` on the image
  (`fsck.json`);
and `judge` turns both into results: acked, delivered, lost, duplicated, fsck_ok.

Lost (a violation): acknowledged (250) but in no mailbox. Duplicated: extra copies
of one message (counted and shown, not a violation). Any fsck error is a violation.
"""

from __future__ import annotations

import imaplib
import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.lab import netns, store_image
from chaos.layout import VIP
from chaos.records import read_records
from chaos.services.postfix import PASSWORD, USERS, NodePaths

if TYPE_CHECKING:
    from chaos.lab.cluster import Cluster

DRAIN_TIMEOUT = 20.0
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
_MSG = re.compile(rb"X-Chaos-Msg:\s*(\d+)", re.IGNORECASE)
_QID = re.compile(rb"\(Postfix\)\s+with\s+\w+\s+id\s+([0-9A-Za-z]+)", re.IGNORECASE)


def queued(cluster: Cluster, node: str) -> int | None:
    """Messages in `node`'s Postfix queue, counted inside its mount namespace."""
    n = cluster.nodes[node]
    if n.holder is None or n.holder.poll() is not None:
        return None
    q = NodePaths(cluster.run_dir, node).queue
    argv = ["nsenter", "-t", str(n.holder.pid), "-m", "--", "find"]
    argv += [str(q / d) for d in QUEUES] + ["-type", "f"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    return len(p.stdout.split())


def read_mailboxes(cluster: Cluster, timeout: float = 10.0) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    try:
        with netns.inside(cluster.lab.ns("client")):
            imap = imaplib.IMAP4(VIP, 143, timeout=timeout)
        with imap:
            for user in USERS:
                imap.login(user, PASSWORD)
                imap.select("INBOX", readonly=True)
                typ, data = imap.search(None, "ALL")
                if typ == "OK" and data and data[0]:
                    _, parts = imap.fetch(
                        "1:*", "(BODY.PEEK[HEADER.FIELDS (X-CHAOS-MSG RECEIVED)])"
                    )
                    for part in parts:
                        if isinstance(part, tuple):
                            m, q = _MSG.search(part[1]), _QID.search(part[1])
                            messages.append(
                                {
                                    "user": user,
                                    "n": int(m.group(1)) if m else None,
                                    "queue_id": q.group(1).decode() if q else None,
                                }
                            )
                imap.logout()
                break  # one user today; logout ends the connection
    except (OSError, imaplib.IMAP4.error) as e:
        return {"read_ok": False, "error": f"{type(e).__name__}: {e}", "messages": messages}
    return {"read_ok": True, "error": None, "messages": messages}


def collect(cluster: Cluster) -> None:
    """Drain the final active's queue (bounded), then read every mailbox over IMAP."""
    serving = sorted(cluster.serving())
    final = serving[0] if len(serving) == 1 else None
    left: int | None = None
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while final is not None:
        left = queued(cluster, final)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out = {"final_active": final, "serving_at_end": serving, "queued_at_end": left}
    out.update(read_mailboxes(cluster))
    (cluster.run_dir / "mailboxes.json").write_text(json.dumps(out, indent=1))


def fsck_store(run_dir: Path) -> None:
    img = store_image.image_path(run_dir)
    released = store_image.release(img)
    result: dict[str, Any] = (
        store_image.fsck(img)
        if released
        else {"ok": False, "exit": None, "output": "loop devices could not be released"}
    )
    (run_dir / "fsck.json").write_text(json.dumps(result, indent=1))


def judge(run_dir: Path) -> dict[str, Any]:
    """The mail numbers of a run: acked, delivered, lost, duplicated, fsck_ok, and problems."""
    acked = {int(r["n"]) for r in read_records(run_dir / "client.jsonl") if r.get("code") == 250}
    try:
        boxes = json.loads((run_dir / "mailboxes.json").read_text())
    except (OSError, ValueError):
        boxes = {"read_ok": False, "error": "no mailboxes.json (the run ended early)"}
    try:
        fsck = json.loads((run_dir / "fsck.json").read_text())
    except (OSError, ValueError):
        fsck = {"ok": False, "output": "no fsck.json"}
    counts = Counter(m["n"] for m in boxes.get("messages", []) if m.get("n") is not None)
    lost = sorted(acked - set(counts))
    problems = []
    if not acked:
        problems.append(("no_mail", "no message was acknowledged: the run proves nothing"))
    if not boxes.get("read_ok"):
        problems.append(("mailboxes", f"mailboxes not read over IMAP: {boxes.get('error')}"))
    if not fsck.get("ok"):
        tail = " | ".join(str(fsck.get("output", "")).strip().splitlines()[-4:])
        problems.append(("fsck", f"e2fsck -f -n on the store: exit {fsck.get('exit')}: {tail}"))
    return {
        "acked": len(acked),
        "delivered": len(counts),
        "lost": len(lost),
        "lost_messages": lost[:50],
        "duplicated": sum(c - 1 for c in counts.values()),
        "fsck_ok": bool(fsck.get("ok")),
        "queued_at_end": boxes.get("queued_at_end"),
        "final_active": boxes.get("final_active"),
        "delivered_set": set(counts),
        "problems": problems,
    }
