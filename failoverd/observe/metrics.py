"""Prometheus metrics, on a private registry.

A private CollectorRegistry (not prometheus_client's global one) lets several
daemons live in one process (tests, benchmarks) without name clashes.

Labels are bounded on purpose, so a flapping cluster cannot grow the series
count without limit:
* `role` is one of ROLES;
* `reason` (transitions) is a short fixed code chosen by the daemon
  ("lease_lost", "health", "switchover", "takeover", "fence_failed", ...),
  never a free-text reason; anything that does not look like such a code is
  counted as "other";
* `method`/`result` (fencing) are the fencer types and ok/failed;
* `check` (health) is the configured check's name;
* `peer`/`method` (fence readiness) are configured peers and fencing methods;
* `operation` (resource failures) is a config key path and action,
  `resources[2].start`: bounded by the config, and never a command line.
node and cluster are labels of failoverd_info only: attach them to every series
with the scrape config (or a `* on() group_left failoverd_info` join).
"""

from __future__ import annotations

import re

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from failoverd import __version__
from failoverd.config import MetricsConfig

ROLES = ("init", "standby", "fencing", "promoting", "active", "demoting", "stopped")

# A fence takes from ~100 ms (ssh to a healthy peer) to tens of seconds (PDU,
# IPMI, lease-wait = T + watchdog timeout + margin).
FENCE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

_REASON_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")


class MetricsError(Exception):
    """The HTTP endpoint on metrics.listen could not be started (e.g. its address is
    in use); raised by failoverd.observe.endpoints."""


def reason_label(reason: str) -> str:
    """The transition reason as a bounded label value."""
    return reason if _REASON_CODE.fullmatch(reason) else "other"


class Metrics:
    """The daemon's metrics, kept in memory; failoverd.observe.endpoints serves render() as
    GET /metrics on `metrics.listen` next to the role endpoints."""

    def __init__(self, cfg: MetricsConfig | None, node: str, cluster: str):
        self.cfg = cfg
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        self.info = Info("failoverd", "This failoverd instance.", registry=r)
        self.info.info({"node": node, "cluster": cluster, "version": __version__})

        self.role = Gauge(
            "failoverd_role",
            "1 for the node's current role, 0 for the others.",
            ["role"],
            registry=r,
        )
        self.epoch = Gauge(
            "failoverd_epoch",
            "Epoch (fencing token) this node knows of; 0 when unknown (epochs start at 1).",
            registry=r,
        )
        self.transitions = Counter(
            "failoverd_transitions",
            "Role transitions by short reason code.",
            ["reason"],
            registry=r,
        )
        self.fence_seconds = Histogram(
            "failoverd_fence_seconds",
            "Duration of fencing attempts by method and result.",
            ["method", "result"],
            buckets=FENCE_BUCKETS,
            registry=r,
        )
        self.lease_remaining = Gauge(
            "failoverd_lease_remaining_seconds",
            "Time the local lease stays valid without renewal; 0 when no lease is held.",
            registry=r,
        )
        self.health_up = Gauge(
            "failoverd_health_check_up",
            "1 when the last run of the check passed.",
            ["check"],
            registry=r,
        )
        self.health_seconds = Gauge(
            "failoverd_health_check_seconds",
            "Duration of the last run of the check.",
            ["check"],
            registry=r,
        )
        self.healthy = Gauge(
            "failoverd_healthy", "1 when the node is healthy (after rise/fall).", registry=r
        )
        self.maintenance = Gauge(
            "failoverd_maintenance", "1 while the cluster is in maintenance mode.", registry=r
        )
        self.zk_requests = Counter(
            "failoverd_zookeeper_requests", "Requests this daemon sent to ZooKeeper.", registry=r
        )
        self.fence_ready = Gauge(
            "failoverd_fence_ready",
            "1 when the last readiness probe of the fencing method toward the peer worked.",
            ["peer", "method"],
            registry=r,
        )
        self.resource_failures = Counter(
            "failoverd_resource_failures",
            "Failed resource starts, by config key path and action (resources[2].start).",
            ["operation"],
            registry=r,
        )
        self.set_role("init")

    # -- updates -------------------------------------------------------------

    def set_role(self, role: str) -> None:
        # An unknown role (never expected) shows as no role at all rather than
        # raising inside the daemon's main loop.
        for r in ROLES:
            self.role.labels(role=r).set(1 if r == role else 0)

    def set_epoch(self, epoch: int | None) -> None:
        self.epoch.set(0 if epoch is None else epoch)

    def transition(self, reason: str) -> None:
        self.transitions.labels(reason=reason_label(reason)).inc()

    def fence_finished(self, method: str, ok: bool, seconds: float) -> None:
        self.fence_seconds.labels(method=method, result="ok" if ok else "failed").observe(seconds)

    def set_lease_remaining(self, seconds: float) -> None:
        self.lease_remaining.set(max(0.0, seconds))

    def set_health(self, check: str, ok: bool, seconds: float) -> None:
        self.health_up.labels(check=check).set(1 if ok else 0)
        self.health_seconds.labels(check=check).set(seconds)

    def set_healthy(self, ok: bool) -> None:
        self.healthy.set(1 if ok else 0)

    def set_maintenance(self, on: bool) -> None:
        self.maintenance.set(1 if on else 0)

    def set_fence_ready(self, peer: str, method: str, ok: bool) -> None:
        # peer and method are bounded: configured peers, configured fencing methods.
        self.fence_ready.labels(peer=peer, method=method).set(1 if ok else 0)

    def resource_failed(self, operation: str) -> None:
        self.resource_failures.labels(operation=operation).inc()

    def zk_request(self, count: int = 1) -> None:
        if count > 0:
            self.zk_requests.inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
