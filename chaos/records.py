"""The JSON-lines records every lab process appends to and the judge reads.

Services, the lab, the nemeses and the client each write their own file of one
JSON object a line (`events/*.jsonl`, `client.jsonl`, the toy store's
`messages.jsonl`); the judge reads them back after the run. Appending is
durable and whole-line (O_APPEND, fsync); reading tells a torn last line (a
crash mid-write, tolerated) from a damaged history (reported). Imports nothing
of the chaos lab: every part of it may use this module.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def append_event(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line durably (O_APPEND keeps concurrent writers' lines whole).

    Every record carries `mono` (CLOCK_MONOTONIC, one clock for every namespace of
    the machine) next to the wall time `t`: the loader judges on it, so a wall-clock
    step during a run cannot reorder the history.
    """
    record.setdefault("mono", time.monotonic())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def json_objects(lines: Iterable[str | bytes]) -> list[dict[str, Any]]:
    """The JSON objects among `lines`, skipping anything else: for daemon logs, where a
    stray line (a traceback) is not a record. History files use read_records, which
    reports such a line instead."""
    out = []
    for raw in lines:
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


class CorruptHistory(ValueError):
    """A history file has an unreadable line that is not a torn last line."""


def read_records(path: Path, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """Every JSON object line of a history file.

    A torn *last* line (a crash mid-write: no final newline) is skipped. Any other
    line that is not a JSON object means the history is damaged and cannot be
    judged silently: it is reported — appended to `problems` (naming file and
    line) when a list is given, else raised as CorruptHistory.
    """
    out: list[dict[str, Any]] = []
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return out
    lines = text.split("\n")
    for k, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        rec: Any = None
        try:
            rec = json.loads(line)
        except ValueError:
            pass
        if isinstance(rec, dict):
            out.append(rec)
            continue
        if k == len(lines) - 1:  # no newline after it: torn by a crash, tolerated
            continue
        msg = f"{path}: line {k + 1} is not a JSON record: {line[:80]!r}"
        if problems is None:
            raise CorruptHistory(msg)
        problems.append(msg)
    return out
