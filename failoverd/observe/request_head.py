"""An HTTP request's head (request line and headers), read with a bound on its size
and one deadline for all of it, for the role endpoints (endpoints.py).

Why not http.server's own reading: it reads up to 100 header lines of 64 KiB each
(about 6.4 MB, some 35 MB of RSS while parsing) and bounds each read, not the
request, so a client sending a byte every few seconds holds its thread for ever.
The daemon runs with OOMScoreAdjust=-900: memory a client makes it take is taken
from the mail services first.
"""

from __future__ import annotations

import socket
import time

# The request line and headers together, at most (bytes). A check's request is a
# hundred bytes; beyond this the answer is 414 (request line) or 431 (headers).
HEAD_LIMIT = 8192
# After a 414/431, how long the rest of an oversized request is read and thrown
# away, so the client can read the answer instead of a connection reset.
DRAIN_FOR = 1.0


def read_head(sock: socket.socket, timeout: float) -> bytes | None:
    """The request line and headers, or None after answering 414/431, or when the
    client went silent, past `timeout` in all, or away (or was hung up on)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        end = _head_end(buf)
        if end is not None and end <= HEAD_LIMIT:
            return buf[:end]
        if end is not None or len(buf) > HEAD_LIMIT:
            if buf.find(b"\n", 0, HEAD_LIMIT) < 0:
                refuse(sock, 414, b"Request-URI Too Long", timeout)
            else:
                refuse(sock, 431, b"Request Header Fields Too Large", timeout)
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None  # TimeoutError included: the deadline passed
        if not chunk:
            return None
        buf += chunk


def refuse(sock: socket.socket, code: int, phrase: bytes, timeout: float) -> None:
    """Answer `code` and stop; what the client still sends is read and thrown away
    for at most DRAIN_FOR, never kept. The caller closes the socket."""
    body = phrase + b"\n"
    answer = b"HTTP/1.0 %d %s\r\n" % (code, phrase)
    answer += b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
    answer += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    try:
        sock.settimeout(timeout)
        sock.sendall(answer)
        sock.shutdown(socket.SHUT_WR)
        until = time.monotonic() + DRAIN_FOR
        while (left := until - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                break
    except OSError:
        pass  # gone, reset, or still sending after DRAIN_FOR: closed next


def _head_end(buf: bytes) -> int | None:
    """Where the request head in `buf` ends (after its blank line), if it does."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := buf.find(sep)) >= 0]
    return min(ends) if ends else None
