"""Checks the daemon runs on every new ZooKeeper session, before it trusts the tree.

* No parent of the cluster node (zookeeper.root and its own parents, `/` aside)
  lets `world:anyone` create, change or delete under it (parents_closed). Where
  anyone may create, anyone may create this cluster's node first, with an ACL of
  their own, or fill the ensemble: the daemon refuses to run (exit 2) until the
  parent is closed (failoverctl fix-acl).
* The ACLs of the cluster node and its five znodes are exactly the ones failoverd
  sets (failoverd.zk.acl). Anything else means someone with ADMIN rights changed
  the rules under us: whoever can write `lock` or `active` can cause a split
  brain, so the daemon refuses to run (exit 2) rather than guess.
* The local fence marker is not far ahead of ZooKeeper's epoch (marker_ahead):
  a critical alert, since this node then cannot serve until epochs pass it; and
  the epoch it remembers is not far above (EPOCH_FLOOR_SLACK): not followed then.
"""

from __future__ import annotations

import structlog

from failoverd.fencing.marker import FenceMarker, marker_ahead
from failoverd.zk.coordinator import Coordinator
from failoverd.zk.znodes import EPOCH_FLOOR_SLACK

log = structlog.get_logger("failoverd.node.daemon")


def parents_closed(coord: Coordinator, timeout: float) -> bool:
    """False (after one critical line per open parent) when a parent of the
    cluster node is open to anyone. Without zookeeper.auth the tree itself is
    open (zookeeper.insecure), so there is nothing to protect."""
    if coord.config.zookeeper.auth is None:
        return True
    open_parents = coord.open_parents(timeout)
    for path, acl in open_parents:
        log.critical(
            "zookeeper_parent_open",
            path=path,
            acl=acl,
            cluster=coord.root,
            hint=f"anyone may create znodes under {path}, e.g. this cluster's node with an "
            "ACL of their own; failoverd refuses to run under it: run failoverctl fix-acl "
            "(deploy/zookeeper/README.md)",
        )
    return not open_parents


def tree_is_ours(coord: Coordinator, timeout: float) -> bool:
    mismatches = coord.acl_mismatches(timeout)
    if mismatches:
        log.critical(
            "zookeeper_acl_mismatch",
            mismatches=mismatches,
            hint="failoverd refuses to run on a tree with an ACL it did not set; "
            "check who changed it, then run failoverctl fix-acl",
        )
    return not mismatches


def alert_marker_ahead(
    coord: Coordinator, marker: FenceMarker, seen_epoch: int, timeout: float
) -> int:
    """Alerts about this node's floors against the breadcrumb's epoch, which it
    returns (0 when the breadcrumb is missing or unreadable)."""
    crumb, readable, _ = coord.read_breadcrumb(timeout)
    if not readable or crumb is None:
        return 0
    ahead = marker_ahead(marker, crumb.epoch)
    if ahead is not None:
        log.critical(
            "fence_marker_ahead",
            marker_epoch=ahead,
            zookeeper_epoch=crumb.epoch,
            hint="a fence for an epoch ZooKeeper never issued: ZooKeeper lost data, "
            "or someone ran fence-self with a made-up epoch; this node cannot "
            "serve until epochs pass it",
        )
    if seen_epoch > crumb.epoch + EPOCH_FLOOR_SLACK:
        log.critical(
            "epoch_floor_ignored",
            member=coord.node,
            field="seen_epoch",
            epoch=seen_epoch,
            zookeeper_epoch=crumb.epoch,
            hint="this node remembers an epoch far above every one in ZooKeeper: "
            "a poisoned record, not followed as a floor",
        )
    return crumb.epoch
