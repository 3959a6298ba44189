"""HTTP role endpoints for load balancers and monitoring, on `metrics.listen`.

(Not named http.py: that would shadow the standard library for anything run from
this directory.)

    GET /active   200 only on the active node whose local lease is valid, else 503
    GET /standby  200 only on a standby that could take over now (eligible), else 503
    GET /health   200 while the daemon's main loop is alive (ticked recently), else 503
    GET /status   this node's view as JSON (role, epoch, health, eligibility, lease)
    GET /metrics  Prometheus metrics
    anything else 404

Why this can never delay a failover: the server runs on its own threads and
never calls kazoo or takes the main loop's locks. It answers from a NodeView, an
immutable snapshot the loop publishes by swapping one attribute (atomic in
CPython), plus a heartbeat float. Each connection has its own thread with a
deadline for its whole request head, and the number of connections is capped, so a
client that connects and sends nothing (or a byte now and then) costs one thread for
a few seconds, not a tick. When the cap is reached, the oldest connection that has
not sent a request is hung up on to make room: idle clients cannot lock a load
balancer's check out.

What one client may cost in memory is bounded too: the request line and headers are
read first, at most request_head.HEAD_LIMIT bytes, and http.server parses only
that buffer.

A metrics.listen that cannot be bound (a local process took the port first) does
not stop the daemon: the endpoints are not needed for safety. start() logs
endpoint_bind_failed and retries with back-off; bind_error goes into the member
status meanwhile. The socket sets SO_REUSEADDR but never SO_REUSEPORT, so nobody can
share the port once it is ours, and a squatter holding it stays visible.

/active is conservative: the snapshot carries the lease's deadline as of the
loop's last look, and the answer turns 503 the moment that deadline passes, even
if the loop is stalled and publishes nothing more.
"""

from __future__ import annotations

import errno
import io
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from failoverd.config import MetricsConfig
from failoverd.observe.metrics import MetricsError
from failoverd.observe.redact import redact
from failoverd.observe.request_head import read_head
from failoverd.zk.lease import boottime

log = structlog.get_logger(__name__)

# A request must arrive whole within this; then its connection is closed.
CLIENT_TIMEOUT = 5.0
# Concurrent connections (threads) at most: a monitoring port needs a handful,
# and a flood must not grow threads without bound (see _Server.process_request).
MAX_CONNECTIONS = 32
# After metrics.listen could not be bound: the first retry after this many seconds,
# doubling up to BIND_RETRY_MAX (a bind attempt costs nothing).
BIND_RETRY = 1.0
BIND_RETRY_MAX = 10.0
# How many ZooKeeper calls, each taking its whole deadline, one main-loop step may
# sit in one after the other (no heartbeat between them) and still count as
# alive: its three refresh reads (lock, control, members) and three writes
# (member status, history, a takeover's lock or breadcrumb). More slow calls in
# a row than that is a ZooKeeper in trouble, which /health may fairly report.
# Waits on the worker thread (fencing, resources) beat every tick.
STEP_CALLS = 6


def loop_stale_after(idle_tick: float, call_deadline: float) -> float:
    """How long the main loop may go without a heartbeat before GET /health says it
    stalled. An idle loop beats at least every `idle_tick`; a busy one sits at most
    in STEP_CALLS ZooKeeper calls in a row, each bounded by `call_deadline` (half the
    session timeout, so this follows the lease). A loop silent for longer than that
    is stuck, not waiting: no bounded operation explains it."""
    return idle_tick + STEP_CALLS * call_deadline


@dataclass(frozen=True)
class NodeView:
    """This node's state as the main loop last saw it (GET /status)."""

    node: str
    cluster: str
    role: str
    epoch: int | None
    healthy: bool
    eligible: bool
    why: str
    maintenance: bool
    reason: str
    version: str
    priority: int = 0  # lower is preferred (node.priority)
    lease_holder: str | None = None  # who this node last saw holding the lock
    # CLOCK_BOOTTIME (the lease's clock) until which the local lease was valid at
    # publication; None when this node holds no lease.
    lease_deadline: float | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never holds up the daemon's exit
    # SO_REUSEADDR: a restart can bind again at once despite TIME_WAIT connections
    # (with it Linux still refuses to share a port another socket listens on).
    # Never SO_REUSEPORT: with it a second process could listen on our port too,
    # and the kernel would hand it part of the load balancer's checks, unseen.
    allow_reuse_address = True
    allow_reuse_port = False
    # The listen backlog. socketserver's default of 5 let a burst of connections
    # overflow it, and every connection beyond waited for the client's SYN retry
    # (1 s, then 3 s): a health check late for no reason (measured: every 6th of
    # 34 connections opened at once took 1.0 s).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: StatusServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.owner = owner
        # Taken by the HTTP threads only (never by the main loop), for microseconds.
        self.guard = threading.Lock()
        self.open = 0
        # Connections that have not sent a whole request yet, oldest first.
        self.silent: dict[Any, None] = {}
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.guard:
            if self.open >= MAX_CONNECTIONS:
                # Full: hang up on the oldest silent connection rather than on this
                # one, which may be a load balancer's check that sends its request at
                # once. Dropping the newest would let a few idle connections lock
                # every check out for CLIENT_TIMEOUT.
                oldest = next(iter(self.silent), None)
                if oldest is None:  # every slot is busy answering (microseconds each)
                    self.shutdown_request(request)
                    return
                del self.silent[oldest]
                _hang_up(oldest)  # its thread's read returns at once, and it ends
            self.open += 1
            self.silent[request] = None
        try:
            super().process_request(request, client_address)
        except Exception:
            self._done(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up early is normal: HAProxy's httpchk resets the
        connection once it has read the status line. socketserver's default would
        print a traceback into the journal for each such check; log anything else
        as one line."""
        _, error, _ = sys.exc_info()
        if isinstance(error, ConnectionError | TimeoutError):
            return
        log.warning("http_request_failed", client=str(client_address[0]), error=repr(error))

    def heard(self, request: Any) -> None:
        """A whole request arrived on `request`: it is answered now, never hung up on."""
        with self.guard:
            self.silent.pop(request, None)

    def _done(self, request: Any) -> None:
        with self.guard:
            self.open -= 1
            self.silent.pop(request, None)


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = CLIENT_TIMEOUT  # applied to the socket: a silent client is dropped
    protocol_version = "HTTP/1.0"  # one request per connection

    def handle(self) -> None:
        """One request: its head read here within HEAD_LIMIT and CLIENT_TIMEOUT in
        all, then parsed by http.server from that buffer, which bounds its reads."""
        head = read_head(self.request, CLIENT_TIMEOUT)
        if head is None:
            return
        self.request.settimeout(CLIENT_TIMEOUT)  # for writing the answer
        self.rfile.close()  # nothing was read from it: the buffer stands in for it
        self.rfile = io.BytesIO(head)
        self.handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.heard(self.request)
        code, ctype, body = self.server.owner.answer(self.path)
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815 - some checkers use HEAD

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # a load balancer polls every second: no log line per check


class StatusServer:
    """Serves the endpoints above. cfg None: nothing is served (publish() still works)."""

    def __init__(
        self,
        cfg: MetricsConfig | None,
        render_metrics: Callable[[], bytes],
        loop_stale_after: float,
        clock: Callable[[], float] = time.monotonic,
        lease_clock: Callable[[], float] = boottime,
    ) -> None:
        self.cfg = cfg
        self.render_metrics = render_metrics
        self.loop_stale_after = loop_stale_after
        self.clock = clock
        self.lease_clock = lease_clock
        self.view: NodeView | None = None
        self.beat_at = float("-inf")
        self._server: _Server | None = None
        # Why metrics.listen is not served ("" while it is, or when not configured):
        # the daemon publishes it in its member status.
        self.bind_error = ""
        self._retry: threading.Thread | None = None
        self._closing = threading.Event()
        self._binding = threading.Lock()

    # -- the main loop's side: two attribute assignments, nothing else ----------

    def publish(self, view: NodeView) -> None:
        self.view = view

    def beat(self) -> None:
        self.beat_at = self.clock()

    # -- the server ---------------------------------------------------------------

    def start(self) -> None:
        """Serve on metrics.listen, or, when it cannot be bound, keep trying in the
        background. Never raises: the endpoints are not needed for safety, and a
        daemon that exited because a local user took its port first would stay down
        (exit 2 is never restarted) while the squatter answered /active."""
        if self.cfg is None or self._server is not None or self._retry is not None:
            return
        try:
            self._bind()
        except MetricsError as e:
            self.bind_error = str(e)
            log.critical(
                "endpoint_bind_failed", listen=self._where(), error=str(e), retry_in=BIND_RETRY
            )
            self._retry = threading.Thread(target=self._keep_binding, name="http-bind")
            self._retry.daemon = True
            self._retry.start()

    def _keep_binding(self) -> None:
        delay, failures = BIND_RETRY, 1
        while not self._closing.wait(delay):
            try:
                self._bind()
            except MetricsError as e:
                failures += 1
                delay = min(delay * 2, BIND_RETRY_MAX)
                if str(e) != self.bind_error:  # a new reason; the same one is said once
                    self.bind_error = str(e)
                    log.critical(
                        "endpoint_bind_failed", listen=self._where(), error=str(e), retry_in=delay
                    )
                continue
            if self._server is not None:
                self.bind_error = ""
                log.warning("endpoint_bound", listen=self._where(), failures=failures)
            return

    def _where(self) -> str:
        assert self.cfg is not None
        host, port = self.cfg.host, self.cfg.port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _bind(self) -> None:
        """Bind metrics.listen and serve it; MetricsError when it cannot be bound."""
        assert self.cfg is not None
        with self._binding:  # against close() from the main thread meanwhile
            if self._closing.is_set():
                return
            try:
                server = _Server((self.cfg.host, self.cfg.port), self)
            except OSError as e:
                where = self._where()
                if e.errno == errno.EADDRINUSE:
                    raise MetricsError(f"cannot listen on {where}: address already in use") from e
                raise MetricsError(f"cannot listen on {where}: {e.strerror or e}") from e
            thread = threading.Thread(
                target=server.serve_forever, name="http", kwargs={"poll_interval": 0.5}
            )
            thread.daemon = True
            thread.start()
            self._server = server

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_address[1])

    def close(self) -> None:
        self._closing.set()
        with self._binding:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # -- answers (also called directly by tests) -------------------------------------

    def alive(self) -> bool:
        return self.clock() - self.beat_at < self.loop_stale_after

    def answer(self, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        view = self.view  # one read: every answer below is about the same snapshot
        text = "text/plain; charset=utf-8"
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", self.render_metrics()
        if path == "/health":
            ok = self.alive()
            return (200 if ok else 503), text, b"alive\n" if ok else b"main loop stalled\n"
        if path == "/active":
            ok = (
                view is not None
                and view.role == "active"
                and view.lease_deadline is not None
                and self.lease_clock() < view.lease_deadline
            )
            return (200 if ok else 503), text, b"active\n" if ok else b"not active\n"
        if path == "/standby":
            ok = view is not None and view.role == "standby" and view.eligible and self.alive()
            why = b"" if view is None else redact(view.why).encode()
            return (200 if ok else 503), text, b"eligible standby\n" if ok else why + b"\n"
        if path == "/status":
            body = {} if view is None else asdict(view)
            # Redacted like the member znode: a reason or a check's name may quote a
            # command line (the safety net; resources/base.py is the first line).
            for field in ("reason", "why"):
                if field in body:
                    body[field] = redact(body[field])
            deadline = body.pop("lease_deadline", None)
            left = 0.0 if deadline is None else max(0.0, deadline - self.lease_clock())
            body["lease_valid"] = left > 0
            # Seconds of local lease left (0 without one): the lease's own clock, read
            # now, so it counts down between snapshots as the lease itself does.
            body["lease_remaining"] = round(left, 3)
            body["loop_alive"] = self.alive()
            return 200, "application/json", (json.dumps(body, sort_keys=True) + "\n").encode()
        return 404, text, b"not found: try /active /standby /health /status /metrics\n"
