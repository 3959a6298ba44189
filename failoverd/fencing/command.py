"""The command fencing method: a local program (IPMI power-off, PDU, cloud API) given
the target's name, address and the new epoch.

Its dry run (check) runs the fencer's `check_argv` when one is configured: the
power switch's status action, the only thing that can verify this method without
powering anything off. Without one, nothing can be verified: the check still
says whether the program is there, and reports the method UNVERIFIED, never OK
(a power script that always fails is executable too)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping

from failoverd.config.model import CommandFencerConfig
from failoverd.fencing.base import FenceOutcome, FenceRequest, FenceTarget
from failoverd.process import run_command


class CommandFencer:
    name = "command"

    def __init__(self, cfg: CommandFencerConfig, check_env: Mapping[str, str] | None = None):
        self.cfg = cfg
        # What check_argv is given besides os.environ: FAILOVERD_CLUSTER and
        # FAILOVERD_NODE, as the fence itself has them (FAILOVERD_TARGET is added).
        self.check_env = dict(check_env or {})

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
        """Run check_argv (OK when it exits 0, FAIL otherwise); without one, only
        look for the program: UNVERIFIED if it is there, FAIL if not."""
        t0 = time.monotonic()
        if self.cfg.check_argv is None:
            ok, reason = self._program_found(target)
            return FenceOutcome(self.name, ok, reason, time.monotonic() - t0, verified=False)
        ok, reason = self._run_check(target)
        return FenceOutcome(self.name, ok, reason, time.monotonic() - t0)

    def _program_found(self, target: FenceTarget) -> tuple[bool, str]:
        argv = self.argv(target, None)
        prog = argv[0] if argv else ""
        found = shutil.which(prog) if prog else None
        if found is None or not os.access(found, os.X_OK):
            return False, f"{prog!r} is not an executable program"
        return True, (
            "not verified: no check_argv is configured, so nothing asked the power switch; "
            "only that the program is executable (would run: " + " ".join(argv) + ")"
        )

    def _run_check(self, target: FenceTarget) -> tuple[bool, str]:
        assert self.cfg.check_argv is not None
        subst = {"{node}": target.node, "{address}": target.address}
        argv = list(self.cfg.check_argv)
        for key, value in subst.items():
            argv = [a.replace(key, value) for a in argv]
        env = {**self.check_env, "FAILOVERD_TARGET": target.node}
        res = run_command(argv, env, self.cfg.timeout, background=True)
        last = f": {res.last_line()}" if res.last_line() else ""
        if res.error:
            return False, f"cannot run {argv[0]}: {res.error}"
        if res.timed_out:
            return False, f"{argv[0]} did not finish within {self.cfg.timeout:g}s (killed)"
        return res.ok, f"check {argv[0]} exited {res.returncode}{last}"
