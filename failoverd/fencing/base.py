"""What fencing talks about: the node to fence, the request, a method's outcome, and
the Fencer protocol every method (command.py, lease_wait.py, ssh.py) keeps.

A method never raises: it reports a human reason either way, so the log line of a
refused takeover says exactly what to fix (the chain: failoverd/fencing/chain.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


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


# What a dry run (check) of a method found, in the operator's words:
# OK: verified, the check itself ran and passed (a power switch's status action
#   exited 0, an ssh login whose forced command answered its dry run, a target
#   that published an armed watchdog device);
# UNVERIFIED: nothing could be checked without fencing (a command fencer with no
#   check_argv: only that its program is executable); not known broken either;
# FAIL: the check ran and failed (exited non-zero, timed out, program missing,
#   ssh refused or a host key mismatch, a target without an armed watchdog).
OK, UNVERIFIED, FAIL = "OK", "UNVERIFIED", "FAIL"
RESULTS = (OK, UNVERIFIED, FAIL)


@dataclass(frozen=True)
class FenceOutcome:
    method: str
    ok: bool
    reason: str
    took: float
    # Only for a dry run: False when `ok` means "not known broken" rather than
    # "checked and works" (UNVERIFIED). A fence's outcome is always verified.
    verified: bool = True

    @property
    def result(self) -> str:
        """OK, UNVERIFIED or FAIL (see above)."""
        if not self.ok:
            return FAIL
        return OK if self.verified else UNVERIFIED


class Fencer(Protocol):
    name: str

    def fence(self, req: FenceRequest) -> FenceOutcome: ...  # never raises

    def check(self, target: FenceTarget) -> FenceOutcome: ...  # dry run: fences nothing


def last_line(data: bytes) -> str:
    """The last non-empty line of a program's output, what a method's reason quotes."""
    lines = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""
