"""The ssh fencer, in its own module so that paramiko (and the
~27 MB of cryptography it loads) is imported only when a node actually fences or
runs fence-check, not by every idle daemon (the chain holds a LazySshFencer,
failoverd/fencing/chain.py, which imports this module at its first use).

paramiko to the target with a dedicated key and only the configured known_hosts
(RejectPolicy: an unknown or changed host key is a failed fence, never an
auto-add). The target's authorized_keys forces `failoverd fence-self --from-ssh`,
which writes the fence marker and stops the resources; we send
`fence-self --epoch N` and then verify the service ports refuse connections.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from failoverd.config import SshFencerConfig
from failoverd.fencing.base import FenceOutcome, FenceRequest, FenceTarget, last_line
from failoverd.fencing.paramiko_import import import_paramiko

if TYPE_CHECKING:
    import paramiko
else:
    paramiko = import_paramiko()  # 10 ms sooner than `import paramiko` (see there)

log = structlog.get_logger("failoverd.fencing.chain")

# A verify probe that hangs is a port not accepting (firewalled or host gone): a short
# timeout keeps verification inside the ssh method's budget.
VERIFY_PROBE_TIMEOUT = 1.0
# A listener may close a moment after its stop command returned; re-probe a port that
# still accepts for this long (bounded by the method's deadline) before failing.
VERIFY_GRACE = 1.0
MAX_OUTPUT = 64 * 1024


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
            # connect_timeout (not the whole timeout) bounds the TCP connect: a peer
            # that is powered off or cut off costs one connect_timeout, and the chain
            # moves on to the next method that much sooner.
            connect = min(cfg.connect_timeout, self._left(deadline, where))
            shown = f"{min(cfg.connect_timeout, cfg.timeout):g}s (connect_timeout)"
            try:
                sock = socket.create_connection((target.address, cfg.port), timeout=connect)
            except ConnectionRefusedError as e:
                raise _Failed(f"connection to {where} refused") from e
            except TimeoutError as e:
                raise _Failed(f"no answer from {where} within {shown}") from e
            except OSError as e:
                raise _Failed(f"cannot connect to {where}: {e.strerror or e}") from e
            sock = low_latency(sock)
            left = self._left(deadline, where)
            try:
                client.connect(
                    target.address,
                    port=cfg.port,
                    username=cfg.user,
                    key_filename=cfg.key_file,
                    sock=sock,
                    timeout=left,
                    # Not connect_timeout: a peer whose kernel answered is there, and
                    # a busy sshd deserves the whole timeout before we power it off.
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
        return chan.recv_exit_status(), last_line(bytes(out)) or last_line(bytes(err))

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


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges every segment it reads at once.

    sshd writes small messages it does not expect an answer to (the host key
    announcement after login, the exit status after the output) and holds its next
    one until they are acknowledged (Nagle); Linux delays that acknowledgement by
    up to 40 ms. Two such stalls (channel open, command end) cost ~90 ms of every
    fence on loopback, more than the whole login. TCP_QUICKACK is not sticky, so
    it is re-armed after each read."""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        with contextlib.suppress(OSError):
            self.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        return data


_TCP_QUICKACK: int = getattr(socket, "TCP_QUICKACK", 0)  # 0: not Linux


def low_latency(sock: socket.socket) -> socket.socket:
    """The fence's connection without the Nagle and delayed-ACK waits (measured on
    loopback: login 60 -> 17 ms, channel open and exit 47 -> 4 ms). Only latency
    changes: the bytes, the host key check and the authentication are the same."""
    with contextlib.suppress(OSError):
        # Our own small messages (service request, auth, channel open) go out at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not _TCP_QUICKACK:  # not Linux: Nagle off is still worth having
        return sock
    timeout = sock.gettimeout()
    quick = _QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    quick.settimeout(timeout)
    return quick


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
