"""Which node holds the service IP: polled by the runner, recorded on every change.

The checker's VIP rule (two nodes holding the VIP at once) must not rest on what
a daemon logged: a frozen or fenced daemon logs nothing. So the runner looks at
each mail node itself, every POLL seconds, from a thread: inside the node's
network namespace it tries to bind a UDP socket to the VIP, which succeeds
exactly when the address is configured there (ip_nonlocal_bind is 0 in a fresh
namespace). No process is spawned per poll, so polling costs next to nothing.

Records in events/vip.jsonl (append_event adds `mono`):
    vip_held      {node, t}                         first poll that saw it held
    vip_released  {node, t, last_held, last_held_mono}  first poll that saw it gone
    vip_watch_end {node, t, last_held?, ...}        the watch stopped (still held?)

The checker uses [vip_held.t, last_held] per node: an interval every poll inside
it saw held, so an overlap of two such intervals is a certain double holding
(a shorter one than POLL can be missed: the daemon's `resource_started` lines
for the VIP complete the picture).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from pathlib import Path

from chaos.lab import netns
from chaos.lab.network import Lab
from chaos.layout import MAIL_HOSTS, VIP
from chaos.records import append_event

POLL = 0.1


def holds_vip(ns: str) -> bool | None:
    """True/False: the VIP is/is not configured in `ns`; None: cannot look (no namespace)."""
    try:
        with netns.inside(ns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((VIP, 0))
            return True
    except OSError as e:
        if e.errno == errno.EADDRNOTAVAIL:
            return False
        return None
    except netns.NetnsError:
        return None


class VipWatch:
    def __init__(self, lab: Lab, nodes: tuple[str, ...] = MAIL_HOSTS, poll: float = POLL):
        self.lab, self.nodes, self.poll = lab, nodes, poll
        self.path: Path = lab.run_dir / "events" / "vip.jsonl"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # node -> (wall, mono) of the last poll that saw it held, while held
        self._held: dict[str, tuple[float, float]] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vip-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for node in self.nodes:
            rec: dict[str, object] = {"event": "vip_watch_end", "node": node, "t": time.time()}
            if node in self._held:
                rec["last_held"], rec["last_held_mono"] = self._held[node]
            append_event(self.path, rec)

    def _run(self) -> None:
        while not self._stop.is_set():
            for node in self.nodes:
                with contextlib.suppress(OSError):
                    self._look(node)
            self._stop.wait(self.poll)

    def _look(self, node: str) -> None:
        held = holds_vip(self.lab.ns(node))
        now = (time.time(), time.monotonic())
        if held is None:
            return
        if held:
            if node not in self._held:
                append_event(self.path, {"event": "vip_held", "node": node, "t": now[0]})
            self._held[node] = now
        elif node in self._held:
            wall, mono = self._held.pop(node)
            append_event(
                self.path,
                {
                    "event": "vip_released",
                    "node": node,
                    "t": now[0],
                    "last_held": wall,
                    "last_held_mono": mono,
                },
            )
