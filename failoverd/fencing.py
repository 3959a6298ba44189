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
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import paramiko
import structlog

from failoverd.config import (
    CommandFencerConfig,
    Config,
    LeaseWaitFencerConfig,
    SshFencerConfig,
)
from failoverd.resources import run_command

log = structlog.get_logger(__name__)

# A verify probe that hangs is a port not accepting (firewalled or host gone): a short
# timeout keeps verification inside the ssh method's budget.
VERIFY_PROBE_TIMEOUT = 1.0
# A listener may close a moment after its stop command returned; re-probe a port that
# still accepts for this long (bounded by the method's deadline) before failing.
VERIFY_GRACE = 1.0
LEASE_WAIT_STEP = 0.1
MAX_OUTPUT = 64 * 1024


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


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


# ---------------------------------------------------------------------------
# ssh
# ---------------------------------------------------------------------------


class _Failed(Exception):
    """One ssh fence attempt failed; the message is the outcome's reason."""


class _RejectUnknown(paramiko.RejectPolicy):
    """RejectPolicy whose error names the key we were offered, for checking by hand."""

    def __init__(self, where: str, known_hosts: str):
        self.where, self.known_hosts = where, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        raise _Failed(
            f"host key for {self.where} not in {self.known_hosts} (offered {key.fingerprint}); "
            "add it only after checking that fingerprint on the peer"
        )


class SshFencer:
    name = "ssh"

    def __init__(self, cfg: SshFencerConfig):
        self.cfg = cfg

    def fence(self, req: FenceRequest) -> FenceOutcome:
        return self._timed(lambda: self._fence(req.target, req.new_epoch))

    def check(self, target: FenceTarget) -> FenceOutcome:
        return self._timed(lambda: self._dry_run(target))

    def _timed(self, run: Callable[[], str]) -> FenceOutcome:
        t0 = time.monotonic()
        try:
            ok, reason = True, run()
        except _Failed as e:
            ok, reason = False, str(e)
        except Exception as e:  # noqa: BLE001 - a fencer never raises; the reason says why
            ok, reason = False, f"unexpected error: {type(e).__name__}: {e}"
        return FenceOutcome(self.name, ok, reason, time.monotonic() - t0)

    def _fence(self, target: FenceTarget, new_epoch: int) -> str:
        deadline = time.monotonic() + self.cfg.timeout
        # The marker on the target records the highest epoch fenced: every one below ours.
        fenced = max(new_epoch - 1, 0)
        rc, last = self._run_remote(target, f"fence-self --epoch {fenced}", deadline)
        if rc != 0:
            detail = f": {last}" if last else ""
            raise _Failed(f"remote fence-self exited {rc}{detail}")
        return "remote fence-self exited 0; " + self._verify_ports(target, deadline)

    def _dry_run(self, target: FenceTarget) -> str:
        deadline = time.monotonic() + self.cfg.timeout
        rc, last = self._run_remote(target, "fence-self --dry-run", deadline)
        detail = f": {last}" if last else ""
        if rc != 0:
            raise _Failed(f"connected and authenticated, but remote dry run exited {rc}{detail}")
        return f"connected and authenticated; remote dry run{detail}"

    def _where(self, target: FenceTarget) -> str:
        return f"[{target.address}]:{self.cfg.port}"

    def _run_remote(self, target: FenceTarget, command: str, deadline: float) -> tuple[int, str]:
        """Run `command` on the target: (exit status, its last output line). _Failed if it
        could not run to completion in time."""
        cfg, where = self.cfg, self._where(target)
        for path, what in ((cfg.known_hosts, "known_hosts"), (cfg.key_file, "key file")):
            if not os.access(path, os.R_OK):
                raise _Failed(f"{what} {path} is not readable")
        client = paramiko.SSHClient()
        try:
            # Only the configured file: never ~/.ssh/known_hosts or /etc/ssh, never auto-add.
            client.get_host_keys().load(cfg.known_hosts)
        except (OSError, paramiko.SSHException) as e:
            raise _Failed(f"cannot load known_hosts {cfg.known_hosts}: {e}") from e
        client.set_missing_host_key_policy(_RejectUnknown(where, cfg.known_hosts))
        # Backstop for the whole operation: each paramiko phase has its own timeout,
        # and closing the client at the deadline ends whichever phase is still waiting.
        guard = threading.Timer(max(0.0, deadline - time.monotonic()), client.close)
        guard.daemon = True
        guard.start()
        try:
            left = self._left(deadline, where)
            try:
                sock = socket.create_connection((target.address, cfg.port), timeout=left)
            except ConnectionRefusedError as e:
                raise _Failed(f"connection to {where} refused") from e
            except TimeoutError as e:
                raise _Failed(f"no answer from {where} within {cfg.timeout:g}s") from e
            except OSError as e:
                raise _Failed(f"cannot connect to {where}: {e.strerror or e}") from e
            left = self._left(deadline, where)
            try:
                client.connect(
                    target.address,
                    port=cfg.port,
                    username=cfg.user,
                    key_filename=cfg.key_file,
                    sock=sock,
                    timeout=left,
                    banner_timeout=left,
                    auth_timeout=left,
                    channel_timeout=left,
                    allow_agent=False,
                    look_for_keys=False,
                )
            except paramiko.BadHostKeyException as e:
                raise _Failed(
                    f"host key CHANGED for {where}: offered {e.key.fingerprint}, "
                    f"{cfg.known_hosts} has {e.expected_key.fingerprint}; refusing to connect"
                ) from e
            except paramiko.AuthenticationException as e:
                raise _Failed(
                    f"authentication as {cfg.user!r} with {cfg.key_file} failed on {where}: {e}"
                ) from e
            except (paramiko.SSHException, OSError, EOFError) as e:
                if time.monotonic() >= deadline:
                    raise _Failed(f"ssh to {where} did not complete within {cfg.timeout:g}s") from e
                raise _Failed(f"ssh to {where} failed: {e or type(e).__name__}") from e
            return self._exec(client, command, deadline, where)
        finally:
            guard.cancel()
            client.close()

    def _left(self, deadline: float, where: str) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Failed(f"ssh to {where} did not complete within {self.cfg.timeout:g}s")
        return left

    def _exec(
        self, client: paramiko.SSHClient, command: str, deadline: float, where: str
    ) -> tuple[int, str]:
        transport = client.get_transport()
        if transport is None or not transport.is_active():
            raise _Failed(f"ssh to {where}: connection closed before the command ran")
        try:
            chan = transport.open_session(timeout=self._left(deadline, where))
            chan.exec_command(command)
            # The exit status arrives after all of the command's output (same channel,
            # in order), so once it is here the output is buffered and can be drained.
            finished = chan.status_event.wait(max(0.0, deadline - time.monotonic()))
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise _Failed(f"running {command!r} on {where} failed: {e or type(e).__name__}") from e
        # Closing the channel (our deadline guard, a lost connection) also sets status_event,
        # leaving exit_status at -1; so does a remote command killed by a signal.
        if not finished or chan.exit_status == -1:
            if time.monotonic() >= deadline - 0.01:
                raise _Failed(f"remote {command!r} did not finish within {self.cfg.timeout:g}s")
            raise _Failed(f"remote {command!r} ended without an exit status (killed or cut off)")
        out, err = bytearray(), bytearray()
        while chan.recv_ready() and len(out) < MAX_OUTPUT:
            out += chan.recv(4096)
        while chan.recv_stderr_ready() and len(err) < MAX_OUTPUT:
            err += chan.recv_stderr(4096)
        # fence-self prints its verdict last on stdout (its log lines go to stderr); other
        # commands (a refusal, a shell error) may only have stderr.
        return chan.recv_exit_status(), _last_line(bytes(out)) or _last_line(bytes(err))

    def _verify_ports(self, target: FenceTarget, deadline: float) -> str:
        ports = self.cfg.verify_ports
        if not ports:
            return "no ports to verify"
        for port in ports:
            grace_end = min(deadline, time.monotonic() + VERIFY_GRACE)
            while _accepts(target.address, port, _probe_timeout(deadline)):
                if time.monotonic() >= grace_end:
                    raise _Failed(
                        f"port {port} on {target.node} still accepts connections after fence"
                    )
                time.sleep(0.1)
        return f"ports {','.join(str(p) for p in ports)} closed"


def _probe_timeout(deadline: float) -> float:
    return max(0.1, min(VERIFY_PROBE_TIMEOUT, deadline - time.monotonic()))


def _accepts(address: str, port: int, timeout: float) -> bool:
    """True only if a TCP connection was accepted; refused, timed out or unreachable is
    'not serving'."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


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
    def __init__(self, fencers: Sequence[Fencer]):
        self.fencers = tuple(fencers)

    def fence(self, req: FenceRequest) -> tuple[bool, list[FenceOutcome]]:
        """Try each method in order; the first success ends the chain."""
        outcomes = []
        for f in self.fencers:
            o = _guarded(f, lambda f=f: f.fence(req))  # type: ignore[misc]
            outcomes.append(o)
            _log("fence_method_finished", o, req.target, epoch=req.new_epoch)
            if o.ok:
                return True, outcomes
        return False, outcomes

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
            if config.watchdog is None:
                # The validator rejects this; should it slip through, fail loudly rather
                # than wait out a timeout that nothing enforces on the old active.
                reason = "lease-wait needs a watchdog; none is configured"
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
