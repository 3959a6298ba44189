"""Fence readiness: know that fencing works before it is needed.

A standby that can reach ZooKeeper but cannot fence its peer is not a standby:
when the active dies, its takeover is refused. One of the outages this project
was founded on was exactly that, a failover path never exercised until the day
it was needed. So each daemon probes every fencing method toward every peer on
its own thread, every `check_interval` (failoverd/fencing/probes.py does one
probe), and:

* publishes the result per method in its member status (`fence_ready`), which
  `failoverctl status` shows, and as `failoverd_fence_ready{peer,method}`;
* logs `fence_path_lost` (critical) when a path breaks or never worked, and
  `fence_path_restored` when it works again;
* tells the fence chain which methods are known dead: at fence time a method
  whose last probe, at most MAX_AGE_INTERVALS intervals old, failed is skipped
  for the next one. Skipping toward a later (stronger) method is always safe;
  the chain never skips its last method, so a path that came back since the
  probe still gets its chance when it is all there is.

Methods are named by their type, numbered from the second of a kind on
("ssh", "command", "command-2"), so a name stays put while the config does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from failoverd.config import Config, FencerConfig
from failoverd.fencing.base import FenceTarget
from failoverd.fencing.probes import ProbeResult, probe
from failoverd.observe import hooks

log = structlog.get_logger("failoverd.fencing.readiness")

# A probe result older than this many of its method's intervals is not trusted
# to skip a method: the prober is late (a loaded machine), so the path's state is
# unknown, and unknown means "try it".
MAX_AGE_INTERVALS = 2.0
# Never let a busy prober spin: at least this long between two rounds.
MIN_WAIT = 0.05
# A standby that lost its ZooKeeper server re-probes every peer at once (see
# zookeeper_lost), at most this often: a flapping connection must not turn into
# an ssh login per flap (one probe round costs the pair ~80 ms of CPU).
ZOOKEEPER_LOST_GAP = 10.0


@dataclass(frozen=True)
class PathState:
    ok: bool
    reason: str
    at: float  # monotonic time the probe finished
    took: float


def method_names(fencing: Sequence[FencerConfig]) -> list[str]:
    names: list[str] = []
    for f in fencing:
        seen = sum(1 for n in names if n == f.type or n.startswith(f"{f.type}-"))
        names.append(f.type if seen == 0 else f"{f.type}-{seen + 1}")
    return names


def _interval(cfg: FencerConfig) -> float:
    return float(getattr(cfg, "check_interval", 0.0)) or 60.0


class FenceReadiness:
    """Probes every (peer, method) on one thread; answers from any thread."""

    def __init__(
        self,
        config: Config,
        on_change: Callable[[str, str, PathState], None] | None = None,
        set_metric: Callable[[str, str, bool], None] | None = None,
        probe_fn: Callable[[FencerConfig, FenceTarget, dict[str, str]], ProbeResult] = probe,
    ):
        self.fencing = tuple(config.fencing)
        self.methods = method_names(self.fencing)
        self.targets = [FenceTarget(p.name, p.address) for p in config.peers]
        self.env = {"FAILOVERD_CLUSTER": config.cluster, "FAILOVERD_NODE": config.node.name}
        self.on_change = on_change
        self.set_metric = set_metric
        self.probe_fn = probe_fn
        self._paths: dict[tuple[str, int], PathState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._soon: set[str] = set()
        self._zookeeper_lost_at = float("-inf")
        self._zookeeper_back_at = float("-inf")
        self._thread: threading.Thread | None = None

    # -- the prober ---------------------------------------------------------

    def start(self) -> None:
        if self._thread is None and self.targets and self.fencing:
            self._thread = threading.Thread(target=self._run, name="fence-readiness", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def probe_soon(self, node: str) -> None:
        """Probe every path to `node` now, not at its next interval: the peer has just
        (re)joined (restarted, powered back on), so what we knew about it is stale,
        and a stale "dead" would make a fence skip a path that works again."""
        with self._lock:
            self._soon.add(node)
        self._wake.set()

    def zookeeper_lost(self) -> None:
        """This standby lost its ZooKeeper server: re-probe every peer now.

        When the cause is the active cut off together with the ZooKeeper leader
        (the "ZooKeeper minority" fault), this node's server gives up on that
        leader after syncLimit and closes its connection, and the takeover comes
        only after the majority's election plus a full T (the new leader restarts
        every session's timeout). A probe now knows the active's ssh path is dead
        by then, so the fence skips ssh instead of waiting out its connect_timeout
        (measured in the lab: T = 2 s, disconnected ~1.0 s after the fault,
        takeover ~3.4 s after it, ssh connect_timeout 0.5 s). When the active is
        fine (a ZooKeeper server restart), the probe finds it fine: no change."""
        now = time.monotonic()
        with self._lock:
            if now - self._zookeeper_lost_at < ZOOKEEPER_LOST_GAP:
                return
            self._zookeeper_lost_at = now
            self._soon.update(t.node for t in self.targets)
        self._wake.set()

    def zookeeper_back(self) -> None:
        """Connected again: re-probe every peer with a path now marked dead.

        A probe made while this node's own network was down (zookeeper_lost)
        finds every path dead; left until the next interval, that would keep
        this standby ineligible (no working fencing path) long after its network
        came back. Same rate bound as zookeeper_lost."""
        now = time.monotonic()
        with self._lock:
            dead = {node for (node, _), st in self._paths.items() if not st.ok}
            if not dead or now - self._zookeeper_back_at < ZOOKEEPER_LOST_GAP:
                return
            self._zookeeper_back_at = now
            self._soon.update(dead)
        self._wake.set()

    def _run(self) -> None:
        # Everything is due at once at start-up: the first status should say.
        due = {(t.node, i): 0.0 for t in self.targets for i in range(len(self.fencing))}
        while not self._stop.is_set():
            with self._lock:
                soon, self._soon = self._soon, set()
            for node, i in due:
                if node in soon:
                    due[(node, i)] = 0.0
            for (node, i), at in sorted(due.items(), key=lambda kv: kv[1]):
                if self._stop.is_set() or at > time.monotonic():
                    continue
                self.probe_once(node, i)
                due[(node, i)] = time.monotonic() + _interval(self.fencing[i])
            self._wake.wait(max(MIN_WAIT, min(due.values()) - time.monotonic()))
            self._wake.clear()

    def probe_once(self, node: str, index: int) -> PathState:
        """Probe one method toward one peer now, record it and report a change."""
        target = next(t for t in self.targets if t.node == node)
        res = self.probe_fn(self.fencing[index], target, dict(self.env))
        state = PathState(res.ok, res.reason, time.monotonic(), res.took)
        with self._lock:
            before = self._paths.get((node, index))
            self._paths[(node, index)] = state
        method = self.methods[index]
        if self.set_metric is not None:
            self.set_metric(node, method, state.ok)
        if before is None or before.ok != state.ok:
            self._report(node, method, before, state)
            if self.on_change is not None:
                self.on_change(node, method, state)
        return state

    def _report(self, peer: str, method: str, before: PathState | None, now: PathState) -> None:
        took_ms = round(now.took * 1000)
        if not now.ok:
            log.critical(
                "fence_path_lost",
                peer=peer,
                method=method,
                reason=now.reason,
                took_ms=took_ms,
                never_worked=before is None,
                hint=f"fencing {peer} skips {method} while this lasts (unless it is the "
                f"last method); see failoverctl fence-check {peer}",
            )
            hooks.fire("fence_path_lost", peer=peer, reason=f"{method}: {now.reason}")
        elif before is None:
            log.info(
                "fence_path_ready", peer=peer, method=method, reason=now.reason, took_ms=took_ms
            )
        else:
            log.info(
                "fence_path_restored", peer=peer, method=method, reason=now.reason, took_ms=took_ms
            )

    # -- answers ------------------------------------------------------------

    def known_dead(self, node: str, index: int) -> str | None:
        """Why method `index` toward `node` is known not to work, or None (works,
        or unknown: never probed, or the last probe is too old to trust)."""
        with self._lock:
            state = self._paths.get((node, index))
        if state is None or state.ok:
            return None
        age = time.monotonic() - state.at
        if age > MAX_AGE_INTERVALS * _interval(self.fencing[index]):
            return None
        return f"its readiness probe {age:.1f}s ago failed: {state.reason}"

    def paths_down(self) -> tuple[str, ...]:
        """Peers that no fencing method reaches now: every method's last probe failed.
        Such a node is not eligible to take over (failoverd.node.eligibility)."""
        with self._lock:
            paths = dict(self._paths)
        down = []
        for t in self.targets:
            states = [paths.get((t.node, i)) for i in range(len(self.fencing))]
            if states and all(s is not None and not s.ok for s in states):
                down.append(t.node)
        return tuple(down)

    def summary(self) -> dict[str, bool]:
        """Per method: False if any peer's path is dead, True once every peer's
        path was probed and works; a method not yet probed at all is absent."""
        with self._lock:
            paths = dict(self._paths)
        out: dict[str, bool] = {}
        for i, method in enumerate(self.methods):
            states = [paths.get((t.node, i)) for t in self.targets]
            if any(s is not None and not s.ok for s in states):
                out[method] = False
            elif states and all(s is not None for s in states):
                out[method] = True
        return out
