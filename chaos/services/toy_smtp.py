"""The lab's mail service: a small SMTP server run as a failoverd `command` resource.

    python -m chaos.services.toy_smtp start  --lab RUN --node mail1 [--fenced-store]
    python -m chaos.services.toy_smtp stop   --lab RUN --node mail1
    python -m chaos.services.toy_smtp status --lab RUN --node mail1    # 0 running, 3 not

`start` daemonizes `serve` and returns once port 25 listens; `stop` stops it and
returns once the process (and so the port) is gone, escalating to SIGKILL.

What the checker relies on, and why the order matters:
* `service_up` is written (fsynced) *before* the port opens and `service_down`
  *after* it closed and after the last store write, so the recorded interval
  always covers the time the node could serve. A killed service cannot write
  `service_down`: `stop` writes it after SIGKILL, the power switch records
  `power_off`.
* Each message is written to the shared store *before* 250 is answered.

The health check is failoverd's own (chaos/lab/nodes.py): the node *can* serve when
the store is there and writable and the fault flag `flags/<node>.unhealthy` is
absent (`path` checks, judged on every node); the active's service must also
answer SMTP (`smtp` check). Scenario 10 sets the flag (the running service then
answers 421, as a broken Postfix would);
scenario 12 writes a delay in seconds to `flags/<node>.slow`; while
`flags/<node>.hold-data` exists a message whose DATA arrived is held before it is
stored (`data_held` event), so a nemesis can freeze the service mid-transaction.
A store write that fails (the store full, scenario 31: `store/.full`) is answered
452 — a temporary failure, the sender retries — never 250; the health check does
not test free space, because a full shared store is not fixed by a failover.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from chaos.records import append_event
from chaos.services.toy_store import Store

if TYPE_CHECKING:
    import asyncio

PORT = 25
# start and stop poll for the port / the process: both lie on the failover path, and
# a 5 ms poll of a local socket or /proc for ~0.1 s costs nothing.
POLL = 0.005
MSG_HEADER = re.compile(rb"^X-Chaos-Msg:\s*(\d+)\s*$", re.MULTILINE | re.IGNORECASE)


class Paths:
    def __init__(self, lab: Path, node: str):
        self.lab, self.node = lab, node
        self.pidfile = lab / node / "service.pid"
        self.log = lab / node / "service.log"
        self.events = lab / "events" / f"{node}-service.jsonl"
        self.store = lab / "store"
        self.unhealthy = lab / "flags" / f"{node}.unhealthy"
        self.slow = lab / "flags" / f"{node}.slow"
        self.hold = lab / "flags" / f"{node}.hold-data"
        # A planted bug for the negative control store-full-acks (chaos/faults/controls.py):
        # answer 250 even when the store write failed. Never set by a scenario.
        self.bug_ack_unstored = lab / "flags" / f"{node}.bug-ack-unstored"

    def delay(self) -> float:
        try:
            return float(self.slow.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    def event(self, event: str, **fields: object) -> None:
        append_event(self.events, {"event": event, "node": self.node, "t": time.time(), **fields})


def _epoch() -> int | None:
    raw = os.environ.get("FAILOVERD_EPOCH", "")
    return int(raw) if raw.isdigit() else None


# -- the server -------------------------------------------------------------------


class SmtpService:
    def __init__(self, paths: Paths, fenced: bool):
        self.p = paths
        self.store = Store(paths.store, fenced=fenced)
        self.epoch = _epoch()
        self.stopping = False
        self.done = asyncio.Event()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        # Up before the port opens: the recorded interval covers every moment we serve.
        self.p.event("service_up", epoch=self.epoch, pid=os.getpid())
        server = await asyncio.start_server(self.session, "0.0.0.0", PORT, backlog=256)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, server)
        await self.done.wait()

    def stop(self, server: asyncio.Server) -> None:
        # Runs on the loop: no store write is in progress, and none starts after this.
        self.stopping = True
        server.close()
        self.p.event("service_down", epoch=self.epoch, pid=os.getpid(), by="sigterm")
        self.done.set()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._dialogue(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        node = self.p.node

        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await asyncio.sleep(self.p.delay())
        if self.stopping or self.p.unhealthy.exists():
            return await reply(f"421 {node} service not available")
        await reply(f"220 {node} ESMTP chaos epoch={self.epoch}")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb in (b"HELO", b"EHLO"):
                await reply(f"250 {node}")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                await reply("250 ok")
            elif verb == b"DATA":
                await reply("354 end with .")
                body = await reader.readuntil(b"\r\n.\r\n")
                await reply(await self._deliver(body))
            elif verb == b"QUIT":
                return await reply("221 bye")
            else:
                await reply("500 unknown command")

    async def _deliver(self, body: bytes) -> str:
        await asyncio.sleep(self.p.delay())  # overload: slow, yet within the timeouts
        if self.stopping:
            return "421 shutting down"
        m = MSG_HEADER.search(body)
        if self.p.hold.exists():
            # Mid-transaction fault (chaos/faults/nemesis.py freeze_service_mid_data): DATA is
            # in, nothing is stored or answered yet. The nemesis freezes the process
            # here; once resumed it writes and answers, however late that is.
            self.p.event("data_held", msg=int(m.group(1)) if m else None, pid=os.getpid())
            while self.p.hold.exists():
                await asyncio.sleep(0.01)
        msg = int(m.group(1)) if m else None
        try:
            rec = self.store.write(msg, self.p.node, self.epoch)
        except OSError as e:
            # Not stored (store full, I/O error): a temporary failure, so the client
            # keeps the message and retries. 250 here would be a lie that loses mail;
            # the planted bug of `python -m chaos controls` (store-full-acks) tells it.
            self.p.event("store_write_failed", msg=msg, error=str(e), epoch=self.epoch)
            if self.p.bug_ack_unstored.exists():
                return f"250 stored epoch={self.epoch}"
            return "452 4.3.1 insufficient system storage"
        if not rec["accepted"]:
            return f"451 stale epoch {self.epoch} rejected by the store"
        return f"250 stored epoch={self.epoch}"


# -- resource commands --------------------------------------------------------------


def _service_pid(p: Paths) -> int | None:
    """The running service's pid, checked against /proc (a stale pidfile is not running)."""
    try:
        pid = int(p.pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    if b"chaos.services.toy_smtp" not in cmdline or stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return None
    return pid


def _listening(timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=timeout):
            return True
    except OSError:
        return False


def cmd_start(p: Paths, fenced: bool, timeout: float) -> int:
    if _service_pid(p) is not None:
        cmd_stop(p, timeout)  # restart: the new instance must carry the new epoch
    p.pidfile.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "chaos.services.toy_smtp",
        "serve",
        "--lab",
        str(p.lab),
        "--node",
        p.node,
    ]
    with open(p.log, "ab") as log:
        child = subprocess.Popen(
            argv + (["--fenced-store"] if fenced else []),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives this command; the daemon's pipes are not held
        )
    p.pidfile.write_text(f"{child.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(f"service exited with {child.returncode}; see {p.log}", file=sys.stderr)
            return 1
        if _listening():
            return 0
        time.sleep(POLL)
    print(f"service not listening on :{PORT} after {timeout}s", file=sys.stderr)
    return 1


def cmd_stop(p: Paths, timeout: float) -> int:
    pid = _service_pid(p)
    if pid is None:
        return 0
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        return 0
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, 2.0):
        print(f"service pid {pid} survived SIGKILL", file=sys.stderr)
        return 1
    p.event("service_down", pid=pid, by="stop-sigkill")
    return 0


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        time.sleep(POLL)
    return False


def _load_asyncio() -> None:
    """Only the server needs asyncio (~22 ms to import, measured): the resource
    commands (start and stop on the failover path, status) run without it."""
    global asyncio
    import asyncio


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chaos.services.toy_smtp")
    ap.add_argument("action", choices=["serve", "start", "stop", "status"])
    ap.add_argument("--lab", required=True, type=Path, help="the run folder")
    ap.add_argument("--node", default=os.environ.get("FAILOVERD_NODE"))
    ap.add_argument("--fenced-store", action="store_true", help="reject stale epochs (451)")
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args(argv)
    if not args.node:
        ap.error("--node or FAILOVERD_NODE is required")
    p = Paths(args.lab.resolve(), args.node)
    if args.action == "serve":
        _load_asyncio()
        asyncio.run(SmtpService(p, args.fenced_store).serve())
        return 0
    if args.action == "start":
        return cmd_start(p, args.fenced_store, args.timeout)
    if args.action == "stop":
        return cmd_stop(p, args.timeout)
    return 0 if _service_pid(p) is not None else 3  # status


if __name__ == "__main__":
    sys.exit(main())
