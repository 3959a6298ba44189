"""The registry of labs: one JSON file per lab in /run/failoverd-chaos/.

A lab claims its prefix here before it creates anything (atomically: concurrent
labs never share one), and adds to its entry what a cleanup must release later
(the mail store's image and loop devices). The entry names the runner's process,
so `python -m chaos cleanup` (chaos/lab/leftovers.py) keeps the lab of a run in
progress and removes only the leftovers of a crashed one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from chaos.layout import REGISTRY


def entry(prefix: str) -> Path:
    return REGISTRY / f"{prefix}.json"


def claim(prefix: str, run_dir: Path, namespaces: list[str]) -> bool:
    """Register a lab: False when another lab (of any process) holds `prefix` already."""
    info = {
        "prefix": prefix,
        "run_dir": str(run_dir),
        "runner_pid": os.getpid(),
        "runner_start": process_start(os.getpid()),
        "namespaces": namespaces,
        "created": time.time(),
    }
    REGISTRY.mkdir(parents=True, exist_ok=True)
    if not write_json_atomic(entry(prefix), info, exclusive=True):
        return False
    (run_dir / "lab.json").write_text(json.dumps(info, indent=1))
    return True


def add_fields(prefix: str, run_dir: Path, **fields: Any) -> None:
    """Add fields to the lab's registry entry and lab.json (cleanup reads them)."""
    for path in (entry(prefix), run_dir / "lab.json"):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        info.update(fields)
        write_json_atomic(path, info)  # a concurrent cleanup must never read half a file


def release(prefix: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        entry(prefix).unlink()


def write_json_atomic(path: Path, data: Any, exclusive: bool = False) -> bool:
    """Write `path` so that a concurrent reader (another run's cleanup) sees the whole
    file or none: a half-written registry entry would read as garbage and be deleted.
    exclusive: fail (return False) when `path` exists, atomically (link(2) never replaces).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    try:
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: (pid, start) names it uniquely."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def runner_alive(pid: int, start: int | None) -> bool:
    """Is the runner that registered a lab still running (the same process, not a reused pid)?"""
    if pid <= 0 or pid == os.getpid():
        return False
    now = process_start(pid)
    return now is not None and (start is None or now == start)
