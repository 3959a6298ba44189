"""Fence readiness: know that fencing works before it is needed.

A standby that can reach ZooKeeper but cannot fence its peer is not a standby:
when the active dies, its takeover is refused. One of the outages this project
was founded on was exactly that, a failover path never exercised until the day
it was needed. So each daemon probes every fencing method toward every peer,
every `check_interval` (failoverd/fencing/probes.py does one probe; lease-wait is
judged by what the peer published about its watchdog device), and:

* publishes the result, OK, UNVERIFIED or FAIL (fencing/base.py), per peer and
  method in its member status (`fence_paths`; `fence_ready` keeps the older
  per-method bool, true unless FAIL), which `failoverctl status` shows and judges,
  and as `failoverd_fence_ready{peer,method}` (1 unless FAIL);
* logs `fence_path_lost` (critical, and the hook of that name) on the first
  probe that fails after one that did not (or when a path never worked), and
  `fence_path_restored` on the first that does not fail after that: one page per
  break, however long it lasts, and none for a path that merely stays broken.
  Each method has its own prober thread, so a power switch whose status action
  hangs until its timeout cannot hold back the page for an ssh path that broke
  meanwhile: a break is seen within one interval plus that probe's own time;
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

from failoverd.config import Config, FencerConfig, LeaseWaitFencerConfig
from failoverd.fencing.base import FAIL, FenceTarget
from failoverd.fencing.lease_wait import PublishedWatchdogs
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
# lease-wait has no path to probe: judging it is a look at what the peer last
# published (a dictionary lookup), so it is judged often, and a peer that
# disarms its watchdog device shows within seconds.
LEASE_WAIT_INTERVAL = 5.0


@dataclass(frozen=True)
class PathState:
    result: str  # OK, UNVERIFIED or FAIL
    reason: str
    at: float  # monotonic time the probe finished
    took: float

    @property
    def ok(self) -> bool:
        """Not known broken (OK or UNVERIFIED): the chain tries it, and it counts
        as a path for eligibility; only OK counts as verified."""
        return self.result != FAIL


def method_names(fencing: Sequence[FencerConfig]) -> list[str]:
    names: list[str] = []
    for f in fencing:
        seen = sum(1 for n in names if n == f.type or n.startswith(f"{f.type}-"))
        names.append(f.type if seen == 0 else f"{f.type}-{seen + 1}")
    return names


def _interval(cfg: FencerConfig) -> float:
    if isinstance(cfg, LeaseWaitFencerConfig):
        return LEASE_WAIT_INTERVAL
    return float(getattr(cfg, "check_interval", 0.0)) or 60.0


class FenceReadiness:
    """Probes every (peer, method) on one thread; answers from any thread."""

    def __init__(
        self,
        config: Config,
        on_change: Callable[[str, str, PathState], None] | None = None,
        set_metric: Callable[[str, str, bool], None] | None = None,
        probe_fn: Callable[[FencerConfig, FenceTarget, dict[str, str]], ProbeResult] = probe,
        published: PublishedWatchdogs | None = None,
    ):
        self.fencing = tuple(config.fencing)
        self.methods = method_names(self.fencing)
        self.targets = [FenceTarget(p.name, p.address) for p in config.peers]
        self.env = {"FAILOVERD_CLUSTER": config.cluster, "FAILOVERD_NODE": config.node.name}
        self.on_change = on_change
        self.set_metric = set_metric
        self.probe_fn = probe_fn
        # What each member last published about its watchdog device (the daemon's,
        # which lease-wait's fence trusts); None: lease-wait stays UNVERIFIED.
        self.published = published
        self.watchdog_timeout = config.watchdog.timeout if config.watchdog else 0.0
        self._paths: dict[tuple[str, int], PathState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Per method: its prober's wake-up, and the peers to probe at once.
        self._wakes = [threading.Event() for _ in self.fencing]
        self._soon: list[set[str]] = [set() for _ in self.fencing]
        self._zookeeper_lost_at = float("-inf")
        self._zookeeper_back_at = float("-inf")
        self._threads: list[threading.Thread] = []

    # -- the probers --------------------------------------------------------

    def start(self) -> None:
        """One thread per method (three at most in practice), each probing its method
        toward every peer: a probe that hangs until its timeout delays only the
        next probe of its own method."""
        if self._threads or not (self.targets and self.fencing):
            return
        for i, method in enumerate(self.methods):
            t = threading.Thread(
                target=self._run, args=(i,), name=f"fence-readiness-{method}", daemon=True
            )
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for wake in self._wakes:
            wake.set()

    def _probe_all_soon(self, nodes: set[str]) -> None:
        with self._lock:
            for soon in self._soon:
                soon.update(nodes)
        for wake in self._wakes:
            wake.set()

    def probe_soon(self, node: str) -> None:
        """Probe every path to `node` now, not at its next interval: the peer has just
        (re)joined (restarted, powered back on), so what we knew about it is stale,
        and a stale "dead" would make a fence skip a path that works again."""
        self._probe_all_soon({node})

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
        self._probe_all_soon({t.node for t in self.targets})

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
        self._probe_all_soon(dead)

    def _run(self, index: int) -> None:
        """Method `index`'s prober. Every peer is due at once at start-up (the first
        status should say); then each probe is due one interval after the previous
        one *started*, so a slow probe does not stretch the interval."""
        interval = _interval(self.fencing[index])
        wake = self._wakes[index]
        due = {t.node: 0.0 for t in self.targets}
        while not self._stop.is_set():
            # Cleared before the requests are taken: one made after this line
            # sets it again and cuts the wait below short, never waits an interval.
            wake.clear()
            with self._lock:
                soon, self._soon[index] = self._soon[index], set()
            for node in soon:
                due[node] = 0.0
            for node, at in sorted(due.items(), key=lambda kv: kv[1]):
                if self._stop.is_set() or at > time.monotonic():
                    continue
                started = time.monotonic()
                self.probe_once(node, index)
                due[node] = started + interval
            wake.wait(max(MIN_WAIT, min(due.values()) - time.monotonic()))

    def probe_once(self, node: str, index: int) -> PathState:
        """Probe one method toward one peer now, record it and report a change."""
        target = next(t for t in self.targets if t.node == node)
        cfg = self.fencing[index]
        if isinstance(cfg, LeaseWaitFencerConfig) and self.published is not None:
            result, reason = self.published.readiness(node, self.watchdog_timeout)
            state = PathState(result, reason, time.monotonic(), 0.0)
        else:
            res = self.probe_fn(cfg, target, dict(self.env))
            state = PathState(res.result, res.reason, time.monotonic(), res.took)
        with self._lock:
            before = self._paths.get((node, index))
            self._paths[(node, index)] = state
        method = self.methods[index]
        if self.set_metric is not None:
            self.set_metric(node, method, state.ok)
        if before is None or before.result != state.result:
            self._report(node, method, before, state)
            if self.on_change is not None:
                self.on_change(node, method, state)
        return state

    def _report(self, peer: str, method: str, before: PathState | None, now: PathState) -> None:
        """One event per edge between broken (FAIL) and not (OK, UNVERIFIED): the
        first failed probe after one that did not fail pages at once; a path that
        stays broken pages no more; the first probe that does not fail clears it.
        OK <-> UNVERIFIED is no break: it is published, not paged."""
        took_ms = round(now.took * 1000)
        result = now.result
        if before is not None and before.ok == now.ok:
            log.info(
                "fence_path_changed", peer=peer, method=method, result=result, reason=now.reason
            )
        elif not now.ok:
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
        else:
            log.info(
                "fence_path_ready" if before is None else "fence_path_restored",
                peer=peer,
                method=method,
                result=result,
                reason=now.reason,
                took_ms=took_ms,
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

    def results(self) -> dict[str, dict[str, str]]:
        """Per peer, per method probed so far: OK, UNVERIFIED or FAIL. What the
        member status publishes as `fence_paths`, and what `failoverctl status`
        judges: a standby with no OK toward the active cannot verifiably fence it."""
        with self._lock:
            paths = dict(self._paths)
        out: dict[str, dict[str, str]] = {}
        for (node, i), state in sorted(paths.items()):
            out.setdefault(node, {})[self.methods[i]] = state.result
        return out

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
