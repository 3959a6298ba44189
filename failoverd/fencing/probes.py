"""One readiness probe per fencing method ("fence readiness"): does
this method work toward that peer right now? Nothing here fences anything.

* ssh: a real login with the fence key and only the configured known_hosts, whose
  forced command runs `fence-self --dry-run` on the peer: connect, host key,
  authentication and the forced command are all exercised. It uses OpenSSH's
  `ssh` client, not paramiko: paramiko and the cryptography it loads would add
  ~15 MB to every idle daemon (30 -> 46 MB measured), over the 40 MB budget,
  while one `ssh` process costs ~10 ms of CPU per probe. The options below make
  it as strict as the fence (sshfence.py): no user or system config, no agent,
  no other key, no known_hosts but the configured one, never add a host key.
* command: the fencer's `check_argv` (the power switch's status action) when one
  is configured (command.py's check, the same as `failoverctl fence-check`), else
  only that its program is executable: UNVERIFIED, not ready-and-verified.
* lease-wait: no path to probe; what the *target* published about its watchdog
  device decides it (readiness.py asks lease_wait.PublishedWatchdogs).

Each probe ends OK, UNVERIFIED or FAIL (fencing/base.py says what each means).
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from failoverd.config import CommandFencerConfig, FencerConfig, SshFencerConfig
from failoverd.fencing.base import FAIL, OK, UNVERIFIED, FenceTarget, last_line
from failoverd.fencing.command import CommandFencer
from failoverd.process import in_background

SSH = "ssh"
# ssh's exit status when ssh itself failed (connect, host key, authentication);
# anything else is the remote command's own exit status.
SSH_FAILED = 255


@dataclass(frozen=True)
class ProbeResult:
    ok: bool  # not known broken: OK or UNVERIFIED
    reason: str
    took: float
    verified: bool = True  # False: nothing could be checked (UNVERIFIED)

    @property
    def result(self) -> str:
        if not self.ok:
            return FAIL
        return OK if self.verified else UNVERIFIED


def probe(cfg: FencerConfig, target: FenceTarget, env: Mapping[str, str]) -> ProbeResult:
    """Probe one method toward `target`; never raises. lease-wait is not probed
    here (it has no path; readiness.py judges it by what the target published)."""
    t0 = time.monotonic()
    verified = True
    try:
        if isinstance(cfg, SshFencerConfig):
            ok, reason = _ssh(cfg, target)
        elif isinstance(cfg, CommandFencerConfig):
            o = CommandFencer(cfg, env).check(target)
            ok, reason, verified = o.ok, o.reason, o.verified
        else:
            ok, verified = True, False
            reason = "lease-wait: nothing here says what the target published"
    except Exception as e:  # noqa: BLE001 - a broken probe is a dead path, not a crash
        ok, reason = False, f"probe error: {type(e).__name__}: {e}"
    return ProbeResult(ok, reason, time.monotonic() - t0, verified)


def ssh_argv(cfg: SshFencerConfig, target: FenceTarget, client: str = SSH) -> list[str]:
    options = {
        "BatchMode": "yes",  # never prompt (passphrase, password, new host key)
        "StrictHostKeyChecking": "yes",  # unknown or changed host key: refuse
        "UserKnownHostsFile": cfg.known_hosts,
        "GlobalKnownHostsFile": "/dev/null",
        "CheckHostIP": "no",
        "UpdateHostKeys": "no",
        "IdentityFile": cfg.key_file,
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "ControlMaster": "no",
        "ControlPath": "none",
        # Whole seconds only; the probe's own deadline (cfg.timeout) bounds the rest.
        "ConnectTimeout": str(max(1, math.ceil(cfg.connect_timeout))),
        "ConnectionAttempts": "1",
        # debug1 says when the TCP connect succeeded ("Connection established."),
        # which lets the probe hold it to connect_timeout (see _ssh); the probe
        # drops the debug lines from what it reports.
        "LogLevel": "DEBUG1",
        # Cheapest first: OpenSSH 9's default, sntrup761x25519, costs ~50 ms of CPU on
        # each side per login (61 -> 9 ms measured on the client); all of these are
        # also offered by paramiko, which does the real fence.
        "KexAlgorithms": "curve25519-sha256,curve25519-sha256@libssh.org,"
        "ecdh-sha2-nistp256,diffie-hellman-group14-sha256",
    }
    argv = [client, "-F", "/dev/null", "-T", "-n", "-p", str(cfg.port), "-l", cfg.user]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    # `--`: whatever the address holds, ssh reads it as the destination, never an option.
    return [*argv, "--", target.address, "fence-self --dry-run"]


def _ssh(cfg: SshFencerConfig, target: FenceTarget) -> tuple[bool, str]:
    client = shutil.which(SSH)
    if client is None:
        return False, "the OpenSSH client (ssh) is not installed: cannot probe"
    for path, what in ((cfg.known_hosts, "known_hosts"), (cfg.key_file, "key file")):
        if not os.access(path, os.R_OK):
            return False, f"{what} {path} is not readable"
    where = f"[{target.address}]:{cfg.port}"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        in_background(ssh_argv(cfg, target, client)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
    )
    try:
        # The fence gives the TCP connect connect_timeout (sshfence.py), and ssh's
        # own ConnectTimeout is whole seconds only: a peer that answers nothing
        # is found dead after the same connect_timeout here. That is what lets a
        # probe started when this standby lost its ZooKeeper server finish before
        # the takeover it may precede (readiness.zookeeper_lost).
        head, answered = _until_connected(proc, min(cfg.connect_timeout, cfg.timeout))
        if not answered:
            _kill(proc)
            return (
                False,
                f"no answer from {where} within {cfg.connect_timeout:g}s (connect_timeout)",
            )
        left = max(0.0, cfg.timeout - (time.monotonic() - t0))
        stdout, rest = proc.communicate(timeout=left)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return False, f"ssh probe to {where} did not finish within {cfg.timeout:g}s"
    err = last_line(_without_debug(head + rest))
    if proc.returncode == SSH_FAILED:
        return False, f"ssh to {where}: {_explain(err)}"
    out = last_line(stdout) or err
    if proc.returncode != 0:
        rc = proc.returncode
        return False, f"connected and authenticated, but remote dry run exited {rc}: {out}"
    return True, f"connected and authenticated; remote dry run: {out}"


# What ssh logs at debug1 once its TCP connect succeeded (OpenSSH's sshconnect.c),
# then on the first bytes of the SSH protocol: any of them means "connected". If a
# future ssh says none of these, every probe would fail after connect_timeout,
# loudly (fence_path_lost), never silently skipping a working path unnoticed.
_CONNECTED = (
    b"debug1: Connection established.",
    b"debug1: Local version string",
    b"debug1: Remote protocol version",
)


def _until_connected(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bool]:
    """ssh's stderr until its TCP connect succeeded or ssh gave up by itself (True:
    its exit status tells which), or until `timeout` passed without either (False)."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    deadline = time.monotonic() + timeout
    got = b""
    while not any(marker in got for marker in _CONNECTED):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return got, False
        chunk = os.read(fd, 4096)
        if not chunk:  # ssh exited (refused, no route, ...): its own answer
            return got, True
        got += chunk
    return got, True


def _without_debug(err: bytes) -> bytes:
    return b"\n".join(ln for ln in err.splitlines() if not ln.startswith(b"debug"))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _explain(err: str) -> str:
    if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION" in err:
        return f"host key unknown or CHANGED (not as in known_hosts): {err}"
    if "Permission denied" in err:
        return f"authentication with the fence key failed: {err}"
    return err or "ssh failed without a message"
