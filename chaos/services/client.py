"""The lab's mail client: numbered messages over SMTP to the service IP at a steady rate.

    python -m chaos.services.client --out RUN/client.jsonl \
        [--target 198.51.100.25] [--interval 0.05]

Message n is sent at start + n*interval whether or not earlier ones finished (a
hung connection must not slow the rate, or the outage would be mismeasured).
Each attempt is recorded as one JSON line {n, t_start, t_end, m_start, m_end, code,
error, server} (m_*: the monotonic clock):
`code` is the reply to the end of DATA (250 = acknowledged: the message must be in
the store) or the first non-2xx/3xx reply; `error` names a timeout or socket error.
SIGTERM stops new sends, lets the ones in flight finish, and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

from chaos.layout import VIP

QUEUED = re.compile(r"queued as ([0-9A-Za-z]+)")


class SmtpError(Exception):
    def __init__(self, code: int, line: str):
        super().__init__(line)
        self.code = code


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    while True:
        line = (await reader.readline()).decode(errors="replace").rstrip()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3] != "-":  # last line of a (multi-line) reply
            return int(line[:3]), line


async def send_one(host: str, port: int, n: int) -> tuple[int, str]:
    """One SMTP transaction; returns the final (code, line)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:

        async def step(cmd: str | None, expect: int) -> tuple[int, str]:
            if cmd is not None:
                writer.write(cmd.encode() + b"\r\n")
                await writer.drain()
            code, line = await _reply(reader)
            if code != expect:
                raise SmtpError(code, line)
            return code, line

        _, banner = await step(None, 220)
        await step("HELO client", 250)
        await step(f"MAIL FROM:<client-{n}@lab>", 250)
        await step("RCPT TO:<postmaster@lab>", 250)
        await step("DATA", 354)
        body = f"X-Chaos-Msg: {n}\r\nSubject: chaos {n}\r\n\r\nmessage {n}\r\n.\r\n"
        writer.write(body.encode())
        await writer.drain()
        code, line = await _reply(reader)
        if code == 250:
            writer.write(b"QUIT\r\n")
            await writer.drain()
        return code, f"{banner.split()[1] if len(banner.split()) > 1 else ''} {line}"
    finally:
        writer.close()


class Client:
    def __init__(self, out: IO[str], host: str, port: int, interval: float, timeout: float):
        self.out, self.host, self.port = out, host, port
        self.interval, self.timeout = interval, timeout
        self.stopping = asyncio.Event()

    def record(self, rec: dict[str, Any]) -> None:
        self.out.write(json.dumps(rec, sort_keys=True) + "\n")
        self.out.flush()

    async def attempt(self, n: int) -> None:
        t_start, m_start = time.time(), time.monotonic()
        rec: dict[str, Any] = {"n": n, "t_start": t_start, "code": None, "error": None}
        rec["m_start"] = m_start  # monotonic twins of the wall times (see chaos/judge/history.py)
        try:
            code, line = await asyncio.wait_for(send_one(self.host, self.port, n), self.timeout)
            rec["code"] = code
            rec["server"] = line.split()[0] if line.split() else None
            if m := QUEUED.search(line):  # Postfix: "250 2.0.0 Ok: queued as 4Xyz"
                rec["queue_id"] = m.group(1)
        except SmtpError as e:
            rec["code"], rec["error"] = e.code, str(e)[:120]
        except TimeoutError:
            rec["error"] = "timeout"
        except (OSError, ConnectionError, ValueError) as e:
            rec["error"] = f"{type(e).__name__}: {e}"[:120]
        rec["t_end"], rec["m_end"] = time.time(), time.monotonic()
        self.record(rec)

    async def run(self, count: int, duration: float) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        start = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        while n < count and time.monotonic() - start < duration and not self.stopping.is_set():
            task = asyncio.create_task(self.attempt(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            delay = start + n * self.interval - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self.stopping.wait(), delay)
                except TimeoutError:
                    pass
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout + 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chaos.services.client")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--target", default=VIP)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between messages")
    ap.add_argument("--timeout", type=float, default=3.0, help="per message, whole transaction")
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--duration", type=float, default=600.0, help="stop after this many seconds")
    args = ap.parse_args(argv)
    with open(args.out, "a", encoding="utf-8") as out:
        client = Client(out, args.target, args.port, args.interval, args.timeout)
        asyncio.run(client.run(args.count, args.duration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
