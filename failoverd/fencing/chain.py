"""Fencing: verifiably stop the previous active before this node takes over (DESIGN.md §2, §5).

The chain tries the configured methods in order; the first that succeeds ends it.
If none succeeds the caller must not promote. Every method reports a human reason
("remote fence-self exited 0; ports 25,143 closed", "host key CHANGED for ..."), so
the log line of a refused takeover says exactly what to fix.

* ssh: paramiko to the target with a dedicated key and only the configured
  known_hosts (RejectPolicy: an unknown or changed host key is a failed fence, never
  an auto-add). The target's authorized_keys forces `failoverd fence-self --from-ssh`,
  which writes the fence marker and stops the resources; we send
  `fence-self --epoch N` and then verify the service ports refuse connections.
* command: a local program (IPMI power-off, PDU, cloud API) given the target's name.
* lease-wait: wait until the old holder must have stopped by itself (its local lease
  ran out and its watchdog fired); only valid when every member has a watchdog.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from failoverd.config import (
    CommandFencerConfig,
    Config,
    LeaseWaitFencerConfig,
    SshFencerConfig,
)
from failoverd.process import run_command

log = structlog.get_logger(__name__)

LEASE_WAIT_STEP = 0.1


@dataclass(frozen=True)
class FenceTarget:
    node: str
    address: str


@dataclass(frozen=True)
class FenceRequest:
    target: FenceTarget
    # The epoch the winner will take; the target fences every epoch below it
    # (its marker gets new_epoch - 1).
    new_epoch: int
    env: Mapping[str, str]  # FAILOVERD_CLUSTER, _NODE, _EPOCH (= new_epoch), _TARGET
    lock_free_since: float | None  # monotonic time the old holder's lock was seen gone
    # The fencer's own lease (the daemon passes LocalLease.valid). The chain asks it
    # before each method: a fencer that was frozen or partitioned past its lease may
    # no longer fence, because the target may since have become the legitimate
    # active. Always true for the CLI's dry runs, which hold no lease.
    lease_valid: Callable[[], bool] = field(default=lambda: True)


@dataclass(frozen=True)
class FenceOutcome:
    method: str
    ok: bool
    reason: str
    took: float


class Fencer(Protocol):
    name: str

    def fence(self, req: FenceRequest) -> FenceOutcome: ...  # never raises

    def check(self, target: FenceTarget) -> FenceOutcome: ...  # dry run: fences nothing


def last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


# ---------------------------------------------------------------------------
# ssh (failoverd.fencing.ssh, imported on first use)
# ---------------------------------------------------------------------------


class SshFencer:
    """Loads the paramiko-based implementation the first time it is needed."""

    name = "ssh"

    def __init__(self, cfg: SshFencerConfig):
        self.cfg = cfg
        self.timeout = cfg.timeout
        self._impl: Fencer | None = None

    def _fencer(self) -> Fencer:
        if self._impl is None:
            from failoverd.fencing.ssh import SshFencer as Impl

            self._impl = Impl(self.cfg)
        return self._impl

    def fence(self, req: FenceRequest) -> FenceOutcome:
        return self._fencer().fence(req)

    def check(self, target: FenceTarget) -> FenceOutcome:
        return self._fencer().check(target)


# ---------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------


class CommandFencer:
    name = "command"

    def __init__(self, cfg: CommandFencerConfig):
        self.cfg = cfg

    def argv(self, target: FenceTarget, epoch: int | None) -> list[str]:
        # Plain replacement, not str.format: other braces in an argument stay as they are.
        # {epoch} is the new epoch, like FAILOVERD_EPOCH; check() leaves it unreplaced.
        subst = {"{node}": target.node, "{address}": target.address}
        subst |= {"{epoch}": str(epoch)} if epoch is not None else {}
        out = list(self.cfg.argv)
        for key, value in subst.items():
            out = [arg.replace(key, value) for arg in out]
        return out

    def fence(self, req: FenceRequest) -> FenceOutcome:
        t0 = time.monotonic()
        argv = self.argv(req.target, req.new_epoch)
        # Its own session, output to a file (a helper it leaves behind cannot hold a pipe
        # open), the whole process group killed at the timeout; env = os.environ + req.env.
        res = run_command(argv, req.env, self.cfg.timeout)
        last = f": {res.last_line()}" if res.last_line() else ""
        if res.error:
            reason = f"cannot run {argv[0]}: {res.error}"
        elif res.timed_out:
            reason = f"{argv[0]} did not finish within {self.cfg.timeout:g}s (killed)"
        else:
            reason = f"{argv[0]} exited {res.returncode}{last}"
        return FenceOutcome(self.name, res.ok, reason, time.monotonic() - t0)

    def check(self, target: FenceTarget) -> FenceOutcome:
        t0 = time.monotonic()
        argv = self.argv(target, None)
        prog = argv[0] if argv else ""
        found = shutil.which(prog) if prog else None
        if found is None or not os.access(found, os.X_OK):
            ok, reason = False, f"{prog!r} is not an executable program"
        else:
            ok, reason = True, "would run: " + " ".join(argv)
        return FenceOutcome(self.name, ok, reason, time.monotonic() - t0)


# ---------------------------------------------------------------------------
# lease-wait
# ---------------------------------------------------------------------------


class LeaseWaitFencer:
    """Waits until the old holder must have stopped by itself.

    From the moment its lock was seen gone: its session expired, so its local lease
    ran out `lease_margin` before that (it demotes on its own) and, if it was frozen,
    its watchdog reset the machine `watchdog.timeout` after its last pet. The margin
    is added once more for clock-rate drift between the two machines.
    """

    name = "lease-wait"

    def __init__(self, session_timeout: float, watchdog_timeout: float, margin: float):
        self.wait = session_timeout + watchdog_timeout + margin

    def fence(self, req: FenceRequest) -> FenceOutcome:
        t0 = time.monotonic()
        start = req.lock_free_since if req.lock_free_since is not None else t0
        until = start + self.wait
        while (now := time.monotonic()) < until:
            if not req.lease_valid():
                # Waiting longer proves nothing any more: another node may take the
                # lease and become active, and this "fence" would then clear us to
                # start next to it.
                reason = "stopped waiting: this node's own lease ran out"
                return FenceOutcome(self.name, False, reason, time.monotonic() - t0)
            time.sleep(min(LEASE_WAIT_STEP, until - now))
        since = "lock seen gone" if req.lock_free_since is not None else "fencing started"
        return FenceOutcome(
            self.name, True, f"waited out {self.wait:g}s since {since}", time.monotonic() - t0
        )

    def check(self, target: FenceTarget) -> FenceOutcome:
        return FenceOutcome(self.name, True, f"would wait {self.wait:g}s", 0.0)


class _Unusable:
    """A configured method that can never work; kept in the chain so its reason is seen."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason

    def fence(self, req: FenceRequest) -> FenceOutcome:
        return FenceOutcome(self.name, False, self.reason, 0.0)

    def check(self, target: FenceTarget) -> FenceOutcome:
        return FenceOutcome(self.name, False, self.reason, 0.0)


# ---------------------------------------------------------------------------
# the chain
# ---------------------------------------------------------------------------


class FenceChain:
    def __init__(
        self, fencers: Sequence[Fencer], known_dead: Callable[[str, int], str | None] | None = None
    ):
        self.fencers = tuple(fencers)
        # Fence readiness (failoverd/fencing/readiness.py): why method i toward a node is known
        # not to work right now, else None. Such a method is skipped for the next one.
        self.known_dead = known_dead

    def fence(self, req: FenceRequest) -> tuple[bool, list[FenceOutcome]]:
        """Try each method in order; the first success ends the chain.

        No method is started without a valid lease of our own (DESIGN.md §5): a
        fencer frozen mid-chain past its lease and woken later must not power off or
        fence-self a node that has since become the legitimate active."""
        outcomes: list[FenceOutcome] = []
        for i, f in enumerate(self.fencers):
            if not req.lease_valid():
                log.warning(
                    "fence_chain_stopped",
                    target=req.target.node,
                    epoch=req.new_epoch,
                    not_started=f.name,
                    reason="this node's own lease ran out: it may no longer fence",
                )
                return False, outcomes
            skip = self._skip(f, i, req.target)
            o = skip or _guarded(f, lambda f=f: f.fence(req))  # type: ignore[misc]
            outcomes.append(o)
            _log("fence_method_finished", o, req.target, epoch=req.new_epoch)
            if o.ok:
                return True, outcomes
        return False, outcomes

    def _skip(self, f: Fencer, index: int, target: FenceTarget) -> FenceOutcome | None:
        """Skipping a method known dead only moves on to a later, stronger one, which is
        always safe. The last method is never skipped: it is the only chance left, and
        the path may have come back since its probe."""
        if self.known_dead is None or index == len(self.fencers) - 1:
            return None
        why = self.known_dead(target.node, index)
        return None if why is None else FenceOutcome(f.name, False, f"skipped: {why}", 0.0)

    def check(self, target: FenceTarget) -> list[FenceOutcome]:
        """Dry-run every method; fences nothing."""
        outcomes = []
        for f in self.fencers:
            o = _guarded(f, lambda f=f: f.check(target))  # type: ignore[misc]
            outcomes.append(o)
            _log("fence_check_finished", o, target)
        return outcomes


def _log(event: str, o: FenceOutcome, target: FenceTarget, **extra: object) -> None:
    took_ms = round(o.took * 1000)
    log.info(
        event,
        method=o.method,
        target=target.node,
        ok=o.ok,
        reason=o.reason,
        took_ms=took_ms,
        **extra,
    )


def _guarded(f: Fencer, run: Callable[[], FenceOutcome]) -> FenceOutcome:
    t0 = time.monotonic()
    try:
        return run()
    except Exception as e:  # noqa: BLE001 - one broken method must not hide the next one
        return FenceOutcome(
            f.name, False, f"internal error: {type(e).__name__}: {e}", time.monotonic() - t0
        )


def build_fence_chain(config: Config) -> FenceChain:
    fencers: list[Fencer] = []
    for cfg in config.fencing:
        if isinstance(cfg, SshFencerConfig):
            fencers.append(SshFencer(cfg))
        elif isinstance(cfg, CommandFencerConfig):
            fencers.append(CommandFencer(cfg))
        elif isinstance(cfg, LeaseWaitFencerConfig):
            if config.watchdog is None or not config.watchdog.device:
                # The validator rejects this; should it slip through, fail loudly rather
                # than wait out a timeout that nothing enforces on the old active
                # (systemd's watchdog restarts the daemon, it resets nothing).
                reason = "lease-wait needs a watchdog device; none is configured"
                fencers.append(_Unusable("lease-wait", reason))
            else:
                fencers.append(
                    LeaseWaitFencer(
                        config.zookeeper.session_timeout,
                        config.watchdog.timeout,
                        config.zookeeper.lease_margin,
                    )
                )
    return FenceChain(fencers)
