"""A webhook receiver on loopback for the shipped page-webhook (a test never pages a
real host): the url file the hook reads, the bodies posted to it, and a way to stop
it early, to see the hook fail when nobody listens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Pager:
    url: Path  # the file page-webhook reads its url from
    server: HTTPServer
    bodies: list[bytes] = field(default_factory=list)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiver(tmp_path: Path) -> Iterator[Pager]:
    got: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = tmp_path / "pager.url"
    url.write_text(f"http://127.0.0.1:{server.server_port}/page\n")
    pager = Pager(url, server, got)
    try:
        yield pager
    finally:
        pager.stop()  # a second stop after an early one returns at once
