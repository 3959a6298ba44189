"""Fencing: verifiably stop the previous active before this node takes over.

The chain tries the configured methods in order; the first that succeeds ends it.
If none succeeds the caller must not promote. Every method reports a human reason
("remote fence-self exited 0; ports 25,143 closed", "host key CHANGED for ..."), so
the log line of a refused takeover says exactly what to fix.

* ssh (ssh.py): paramiko to the target with a dedicated key and only the configured
  known_hosts (RejectPolicy: an unknown or changed host key is a failed fence, never
  an auto-add). The target's authorized_keys forces `failoverd fence-self --from-ssh`,
  which writes the fence marker and stops the resources; we send
  `fence-self --epoch N` and then verify the service ports refuse connections.
  The chain holds it as a LazySshFencer: paramiko is loaded at the first fence.
* command (command.py): a local program (IPMI power-off, PDU, cloud API) given the
  target's name.
* lease-wait (lease_wait.py): wait until the old holder must have stopped by itself
  (its local lease ran out and its watchdog fired); only valid when every member has
  a watchdog device, and refused toward a target that did not publish one armed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

from failoverd.config.model import (
    CommandFencerConfig,
    Config,
    LeaseWaitFencerConfig,
    SshFencerConfig,
)
from failoverd.fencing.base import FenceOutcome, Fencer, FenceRequest, FenceTarget
from failoverd.fencing.command import CommandFencer
from failoverd.fencing.lease_wait import LeaseWaitFencer, PublishedWatchdogs

log = structlog.get_logger(__name__)


class LazySshFencer:
    """The ssh method as the chain holds it: the paramiko-based SshFencer
    (failoverd/fencing/ssh.py) is imported and made at the first fence or check, so
    an idle daemon never loads paramiko."""

    name = "ssh"

    def __init__(self, cfg: SshFencerConfig):
        self.cfg = cfg
        self.timeout = cfg.timeout
        self._impl: Fencer | None = None

    def _fencer(self) -> Fencer:
        if self._impl is None:
            from failoverd.fencing.ssh import SshFencer

            self._impl = SshFencer(self.cfg)
        return self._impl

    def fence(self, req: FenceRequest) -> FenceOutcome:
        return self._fencer().fence(req)

    def check(self, target: FenceTarget) -> FenceOutcome:
        return self._fencer().check(target)


class _Unusable:
    """A configured method that can never work; kept in the chain so its reason is seen."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason

    def fence(self, req: FenceRequest) -> FenceOutcome:
        return FenceOutcome(self.name, False, self.reason, 0.0)

    def check(self, target: FenceTarget) -> FenceOutcome:
        return FenceOutcome(self.name, False, self.reason, 0.0)


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

        No method is started without a valid lease of our own: a
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
        """Dry-run every method; fences nothing. Each outcome's `result` says what
        was verified: OK, UNVERIFIED or FAIL (fencing/base.py)."""
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


def build_fence_chain(config: Config, published: PublishedWatchdogs | None = None) -> FenceChain:
    """`published`: the daemon's memory of what each member published about its
    watchdog device, which lease-wait trusts (None: failoverctl's dry runs)."""
    fencers: list[Fencer] = []
    # What a power switch's status action gets, as in fence readiness (probes.py).
    check_env = {"FAILOVERD_CLUSTER": config.cluster, "FAILOVERD_NODE": config.node.name}
    for cfg in config.fencing:
        if isinstance(cfg, SshFencerConfig):
            fencers.append(LazySshFencer(cfg))
        elif isinstance(cfg, CommandFencerConfig):
            fencers.append(CommandFencer(cfg, check_env))
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
                        published,
                    )
                )
    return FenceChain(fencers)
