"""A tiny SMTP-speaking service, run as a failoverd `command` resource by the
integration tests and the loopback demo.

    python -m chaos.services.loopback_smtp start|stop|status --name NODE --dir DIR --port PORT

`start` forks a detached server and returns once it listens; the server itself
appends `up`/`down` events (node, epoch from FAILOVERD_EPOCH, time) to
DIR/service-events.jsonl, so tests judge overlap from what the services recorded,
not from what a daemon believed (like Hadoop's DummySharedResource).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path


def record(events: Path, **event: object) -> None:
    line = json.dumps({"t": time.time(), **event}) + "\n"
    fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_events(directory: Path) -> list[dict[str, object]]:
    path = directory / "service-events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def serving_intervals(
    events: list[dict[str, object]], now: float
) -> list[tuple[str, float, float]]:
    """(node, up, down) per service run; a run still up ends at `now`."""
    open_at: dict[str, float] = {}
    out = []
    for e in sorted(events, key=lambda e: float(e["t"])):  # type: ignore[arg-type]
        node, t = str(e["node"]), float(e["t"])  # type: ignore[arg-type]
        if e["event"] == "up":
            open_at[node] = t
        elif e["event"] == "down" and node in open_at:
            out.append((node, open_at.pop(node), t))
    out += [(n, t, now) for n, t in open_at.items()]
    return out


def overlaps(intervals: list[tuple[str, float, float]]) -> list[tuple[str, str, float]]:
    """Pairs of different nodes serving at the same time, with the overlap length."""
    found = []
    for i, (a, a0, a1) in enumerate(intervals):
        for b, b0, b1 in intervals[i + 1 :]:
            if a != b and min(a1, b1) > max(a0, b0):
                found.append((a, b, min(a1, b1) - max(a0, b0)))
    return found


def serve(name: str, directory: Path, port: int) -> None:
    events = directory / "service-events.jsonl"
    epoch = os.environ.get("FAILOVERD_EPOCH", "")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    record(events, node=name, event="up", epoch=epoch, pid=os.getpid())

    def down(*_: object) -> None:
        srv.close()
        record(events, node=name, event="down", epoch=epoch, pid=os.getpid())
        os._exit(0)

    signal.signal(signal.SIGTERM, down)
    (directory / f"{name}.ready").write_text(str(os.getpid()))
    while True:
        conn, _ = srv.accept()
        with conn:
            try:
                conn.settimeout(2.0)
                f = conn.makefile("rwb")
                f.write(f"220 {name} toy ESMTP\r\n".encode())
                f.flush()
                for line in f:
                    cmd = line.strip().upper()
                    if cmd.startswith((b"EHLO", b"HELO")):
                        f.write(f"250 {name}\r\n".encode())
                    elif cmd == b"QUIT":
                        f.write(b"221 bye\r\n")
                        f.flush()
                        break
                    else:
                        f.write(b"250 ok\r\n")
                    f.flush()
            except OSError:
                pass


def pid_of(directory: Path, name: str) -> int | None:
    """The service's pid while it runs (a zombie waiting to be reaped has stopped)."""
    try:
        pid = int((directory / f"{name}.pid").read_text())
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return None if state in ("Z", "X") else pid
    except (OSError, ValueError, IndexError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("action", choices=["start", "stop", "status", "serve"])
    p.add_argument("--name", required=True)
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    a.dir.mkdir(parents=True, exist_ok=True)
    pidfile = a.dir / f"{a.name}.pid"
    if a.action == "serve":
        serve(a.name, a.dir, a.port)
        return 0
    if a.action == "status":
        return 0 if pid_of(a.dir, a.name) else 3
    if a.action == "stop":
        pid = pid_of(a.dir, a.name)
        if pid is None:
            return 0
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and pid_of(a.dir, a.name):
            time.sleep(0.01)
        return 1 if pid_of(a.dir, a.name) else 0
    if pid_of(a.dir, a.name):
        return 0
    if (a.dir / f"{a.name}.fail-start").exists():  # tests: a service that cannot start
        print(f"{a.name}: start refused (fail-start flag)", file=sys.stderr)
        return 1
    (a.dir / f"{a.name}.ready").unlink(missing_ok=True)
    import subprocess

    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chaos.services.loopback_smtp",
            "serve",
            "--name",
            a.name,
            "--dir",
            str(a.dir),
            "--port",
            str(a.port),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(a.dir / f"{a.name}.err", "ab"),
        start_new_session=True,
    )
    pidfile.write_text(str(child.pid))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if (a.dir / f"{a.name}.ready").exists():
            return 0
        if child.poll() is not None:
            return 1
        time.sleep(0.01)
    return 1


if __name__ == "__main__":
    sys.exit(main())
