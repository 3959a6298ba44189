"""The target side of ssh fencing: `failoverd -c FILE fence-self`.

A peer that won the lease connects with its dedicated key; this node's
authorized_keys forces `failoverd -c FILE fence-self --from-ssh`, so whatever the
peer asked for arrives in SSH_ORIGINAL_COMMAND and is parsed strictly: only
`fence-self --epoch N` and `fence-self --dry-run` are accepted. A stolen fence key
can therefore stop this node's services, and nothing else.

A made-up epoch is refused too: one far above every epoch this node has seen
(fencing/epoch_bound.py) would keep it from serving for good. Exit 2, nothing stopped.

A stale fence is refused: `--epoch N` fences every epoch up to N for a peer that
will serve N+1. If this node's daemon serves an epoch above N (its active record,
marker.py), the request comes from a fencer that woke up late, e.g. frozen
mid-chain past its lease while this node legitimately took over; stopping us would
leave the cluster with an "active" that runs nothing. Exit 2, nothing stopped.

Order matters: under the fence lock, the marker is written *first*, then the
resources are stopped, each by its fast path (`kill`, failoverd/resources/base.py):
a fence is not a graceful stop. Once the marker exists, a daemon that resumes from a freeze
refuses to start anything for the fenced epoch, so the stop cannot be undone behind
our back; and the lock guarantees no start is half-way through while we stop.

What is stopped is what the daemon started, not only what the file says now: the
config may have been edited since the daemon read it (every change but `log:`
needs a restart). So fence-self stops the union of the daemon's record of the
resources it started (resources/started.py) and the file's. A record it cannot
read fails the fence (after stopping what the file names): what runs here is then
unknown, and the peer must fall through to a stronger method such as power.
After a clean stop of everything, the record is cleared, under the same lock.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, TextIO

from failoverd.config import Config, SshFencerConfig
from failoverd.fencing import epoch_bound
from failoverd.fencing.marker import ActiveRecordUnreadable, FenceMarker, MarkerUnreadable
from failoverd.observe import fastlog

if TYPE_CHECKING:
    from failoverd.resources.started import StartedRecord

log = fastlog.get_logger(__name__)  # no structlog in fence-self

# fence-self must finish inside the peer's ssh timeout (default 5 s), stop time
# included, so it waits for the fence lock at most half of that and never more than
# 3 s. If the daemon holds the lock longer it is frozen mid-start: failing here makes
# the peer fall through to power fencing, which is what a frozen node needs.
MAX_LOCK_WAIT = 3.0

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_REFUSED = 2  # a stale fence: this node serves a newer epoch than the fencer's

# At most 16 digits: epochs are below 2^53 (znodes.EPOCH_LIMIT); a longer one is
# made up, and a huge marker would block this node for good.
_EPOCH_CMD = re.compile(r"fence-self --epoch ([0-9]{1,16})")


def parse_ssh_original_command(s: str | None) -> tuple[int | None, bool]:
    """(epoch, dry_run) from SSH_ORIGINAL_COMMAND; ValueError for anything else."""
    if s is None or not s.strip():
        raise ValueError("no command given (SSH_ORIGINAL_COMMAND is empty)")
    cmd = " ".join(s.split())
    if cmd == "fence-self --dry-run":
        return None, True
    m = _EPOCH_CMD.fullmatch(cmd)
    if m is None:
        shown = s if len(s) <= 80 else s[:80] + "..."
        raise ValueError(
            f"only 'fence-self --epoch N' or 'fence-self --dry-run' are allowed, got {shown!r}"
        )
    epoch = int(m.group(1))
    if epoch >= 2**53:
        raise ValueError(f"epoch {epoch} is beyond any epoch ZooKeeper issues (2^53)")
    return epoch, False


def lock_wait(config: Config) -> float:
    ssh = [f.timeout for f in config.fencing if isinstance(f, SshFencerConfig)]
    return min([MAX_LOCK_WAIT, *(t / 2 for t in ssh)])


def run_fence_self(
    config: Config, epoch: int | None, dry_run: bool, out: TextIO | None = None
) -> int:
    """Fence this node at `epoch` (or only check that it could be); the exit code.
    One line per step goes to `out` (default stdout), the verdict last."""
    out = out if out is not None else sys.stdout
    if dry_run:
        return _dry_run(config, out)
    if epoch is None or epoch < 0:
        print("fence-self: --epoch N (N >= 0) is required unless --dry-run", file=out)
        return EXIT_USAGE

    from failoverd.resources.base import stop_all
    from failoverd.resources.build import build_resources
    from failoverd.resources.started import RecordUnreadable, StartedRecord, leftovers

    by = os.environ.get("SSH_CLIENT", "").split(" ")[0] or "local"
    marker = FenceMarker(config.node.state_dir)
    env = {
        "FAILOVERD_CLUSTER": config.cluster,
        "FAILOVERD_NODE": config.node.name,
        "FAILOVERD_EPOCH": str(epoch),
    }
    log.info("fence_self_started", epoch=epoch, by=by)
    try:
        with marker.held(timeout=lock_wait(config)):
            active = _active_epoch(marker, epoch)
            if active is not None and active > epoch:
                reason = (
                    f"this node is active at epoch {active}, newer than the fencer's "
                    f"{epoch + 1}: a stale fence, refused"
                )
                log.error("fence_self_refused", epoch=epoch, active_epoch=active, by=by)
                print(f"REFUSED: {reason}", file=out)
                return EXIT_REFUSED
            made_up = _made_up(config, marker, active, epoch)
            if made_up:
                log.error("fence_self_refused", epoch=epoch, reason=made_up, by=by)
                print(f"REFUSED: {made_up}, refused", file=out)
                return EXIT_REFUSED
            marker_error = None
            try:
                marker.write(epoch, by=f"fence-self from {by}")
            except OSError as e:
                # Still stop everything: stopping is what the peer needs most. But without a
                # durable marker a resumed daemon could start again, so the fence fails.
                marker_error = f"cannot write fence marker in {config.node.state_dir}: {e}"
                print(f"FAILED marker: {marker_error}", file=out)
            else:
                print(f"marker: fenced every epoch up to {epoch}", file=out)
            record = StartedRecord(config.node.state_dir)
            configured = build_resources(config.resources)
            record_error = None
            try:
                resources = leftovers(record, config.resources, configured)
            except RecordUnreadable as e:
                # Stop what the file names all the same, then fail: whatever the
                # daemon started from an older file may still run.
                record_error = f"resources record unreadable, what runs is unknown: {e}"
                log.critical("resources_record_unreadable", error=str(e), epoch=epoch)
                print(f"FAILED {record_error}", file=out)
                resources = configured
            # Fast: a fence is not a graceful stop. The peer is waiting to start
            # the same services; every resource takes its fast path (`kill`).
            failures = stop_all(resources, env, True)
            if not failures and marker_error is None and record_error is None:
                _clear_record(record)
    except TimeoutError:
        reason = "daemon is mid-start and holds the fence lock"
        log.error("fence_self_failed", epoch=epoch, reason=reason)
        print(f"FAILED: {reason}", file=out)
        return EXIT_FAILED
    except Exception as e:  # noqa: BLE001 - report any failure to the peer as a failed fence
        log.error("fence_self_failed", epoch=epoch, reason=str(e), error=type(e).__name__)
        print(f"FAILED: {type(e).__name__}: {e}", file=out)
        return EXIT_FAILED

    for res in reversed(resources):
        # stop_all reports "<name>: <reason>"; match by prefix (a vip name may hold ':').
        failure = next((f for f in failures if f.startswith(f"{res.name}: ")), None)
        print(f"FAILED {failure}" if failure else f"stopped {res.name}", file=out)
    problems = [*failures, *(e for e in (marker_error, record_error) if e)]
    log.info("fence_self_finished", epoch=epoch, ok=not problems, problems=problems)
    # The last line is what the peer quotes in its fence outcome: make it the verdict.
    if problems:
        print(f"fence incomplete: {'; '.join(problems)}", file=out)
        return EXIT_FAILED
    print(f"fenced {config.node.name} at epoch {epoch}", file=out)
    return EXIT_OK


def _clear_record(record: StartedRecord) -> None:
    """Everything stopped cleanly: nothing this node started runs any more. A record
    that stays (an error here) costs only stops of what no longer runs."""
    try:
        record.clear()
    except OSError as e:
        log.error("resources_record_not_cleared", path=str(record.path), error=str(e))


def _made_up(config: Config, marker: FenceMarker, active: int | None, epoch: int) -> str:
    """Why `epoch` is too high to be a real fencer's (fencing/epoch_bound.py), "" if it
    is not. An unreadable marker counts as nothing seen: the strict side."""
    try:
        fenced = marker.fenced_epoch()
    except MarkerUnreadable:
        fenced = None
    seen = epoch_bound.remembered_epoch(config.node.state_dir, config.cluster_path)
    return epoch_bound.refusal(epoch, [fenced, active, seen])


def _active_epoch(marker: FenceMarker, epoch: int) -> int | None:
    """The epoch this node's daemon serves (None: not active), read under the lock.

    An unreadable record reads as "not active", so the fence goes ahead, loudly.
    Refusing would leave a node that may be an old active still running: if the
    fencer then has no other method, nobody takes over; if it has lease-wait, it
    takes over next to us; both are worse than the other error, stopping a newer
    legitimate active, which is an outage (its daemon sees its resources stopped and
    demotes), never two nodes serving."""
    try:
        return marker.active_epoch()
    except ActiveRecordUnreadable as e:
        log.critical(
            "active_record_unreadable",
            error=str(e),
            epoch=epoch,
            hint="fencing anyway: one fence too many is an outage, a refused one may be "
            "a split brain",
        )
        return None


def _dry_run(config: Config, out: TextIO) -> int:
    """Report whether a fence would work; touches nothing (no marker, no lock file)."""
    problems = []
    state_dir = config.node.state_dir
    existing = state_dir
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        problems.append(f"state_dir {state_dir} is not writable")
    try:
        fenced = FenceMarker(state_dir).fenced_epoch()
        marker = "marker none" if fenced is None else f"marker at epoch {fenced}"
    except MarkerUnreadable as e:
        marker = "marker UNREADABLE (blocks every start)"
        print(f"marker: {e}", file=out)
    names: list[str] = []
    try:
        from failoverd.resources.build import build_resources
        from failoverd.resources.started import RecordUnreadable, StartedRecord, leftovers

        configured = build_resources(config.resources)
        record = StartedRecord(state_dir)
        try:
            names = [r.name for r in reversed(leftovers(record, config.resources, configured))]
        except RecordUnreadable as e:
            names = [r.name for r in reversed(configured)]
            problems.append(f"resources record unreadable, what runs is unknown: {e}")
    except Exception as e:  # noqa: BLE001 - a dry run reports, it does not crash
        problems.append(f"resources cannot be built: {type(e).__name__}: {e}")
    for name in names:
        print(f"would stop {name}", file=out)
    log.info("fence_self_dry_run", ok=not problems, problems=problems, marker=marker)
    # The last line is what the peer's fence-check shows.
    if problems:
        print(f"cannot be fenced: {'; '.join(problems)}", file=out)
        return EXIT_FAILED
    stops = ", ".join(names) or "nothing"
    print(f"{config.node.name} can be fenced (would stop {stops}; {marker})", file=out)
    return EXIT_OK
