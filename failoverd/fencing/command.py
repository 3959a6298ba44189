"""The command fencing method: a local program (IPMI power-off, PDU, cloud API) given
the target's name, address and the new epoch."""

from __future__ import annotations

import os
import shutil
import time

from failoverd.config.model import CommandFencerConfig
from failoverd.fencing.base import FenceOutcome, FenceRequest, FenceTarget
from failoverd.process import run_command


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
