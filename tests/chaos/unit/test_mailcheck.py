"""Judging delivery with the real mail node: acked vs. what IMAP found, and fsck."""

from __future__ import annotations

import json
from pathlib import Path

from chaos.judge.checker import check
from chaos.judge.history import Delivery, Expectation, History
from chaos.judge.readback import judge


def run_dir(tmp_path: Path, acked: list[int], found: list[int], fsck_ok: bool = True) -> Path:
    lines = [{"n": n, "code": 250, "queue_id": f"Q{n}", "t_start": 0, "t_end": 0} for n in acked]
    lines.append({"n": 999, "code": None, "error": "timeout", "t_start": 0, "t_end": 0})
    (tmp_path / "client.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    boxes = {"read_ok": True, "messages": [{"n": n, "queue_id": f"Q{n}"} for n in found]}
    (tmp_path / "mailboxes.json").write_text(json.dumps(boxes))
    out = (
        "" if fsck_ok else "Inode 12 has illegal blocks.\nmailstore: ***** FILE SYSTEM WAS MODIFIED"
    )
    (tmp_path / "fsck.json").write_text(
        json.dumps({"ok": fsck_ok, "exit": 0 if fsck_ok else 4, "output": out})
    )
    return tmp_path


def test_every_acked_message_delivered_once_is_clean(tmp_path: Path) -> None:
    r = judge(run_dir(tmp_path, [1, 2, 3], [1, 2, 3, 999]))
    assert (r["acked"], r["delivered"], r["lost"], r["duplicated"], r["fsck_ok"]) == (
        3,
        4,
        0,
        0,
        True,
    )
    assert r["problems"] == []


def test_lost_duplicated_and_fsck_errors_are_counted(tmp_path: Path) -> None:
    r = judge(run_dir(tmp_path, [1, 2, 3, 4], [1, 1, 1, 3], fsck_ok=False))
    assert (r["lost"], r["lost_messages"], r["duplicated"]) == (2, [2, 4], 2)
    assert [rule for rule, _ in r["problems"]] == ["fsck"]
    assert "exit 4" in r["problems"][0][1]


def test_unreadable_mailboxes_and_no_acked_mail_are_problems(tmp_path: Path) -> None:
    (tmp_path / "client.jsonl").write_text("")
    r = judge(tmp_path)
    assert {rule for rule, _ in r["problems"]} == {"no_mail", "mailboxes", "fsck"}


def test_checker_judges_lost_mail_against_the_mailboxes_when_given() -> None:
    h = History(nodes=("mail1", "mail2"))
    h.deliveries = [Delivery(n, 1.0, 1.1, 250) for n in (1, 2)]
    assert [v.rule for v in check(h, Expectation()).violations] == ["lost"]  # no store writes
    assert check(h, Expectation(), delivered={1, 2}).passed
    [v] = check(h, Expectation(), delivered={1}).violations
    assert v.rule == "lost" and "any mailbox" in v.message and "[2]" in v.message
