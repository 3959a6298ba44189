"""One readiness probe per fencing method (DESIGN.md §5, "fence readiness"): does
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
  is configured, else only that its program is executable.
* lease-wait: always ready; the config validator already requires a watchdog.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from failoverd.config import CommandFencerConfig, FencerConfig, SshFencerConfig
from failoverd.fencing import CommandFencer, FenceTarget, last_line

SSH = "ssh"
# ssh's exit status when ssh itself failed (connect, host key, authentication);
# anything else is the remote command's own exit status.
SSH_FAILED = 255


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str
    took: float


def probe(cfg: FencerConfig, target: FenceTarget, env: Mapping[str, str]) -> ProbeResult:
    """Probe one method toward `target`; never raises."""
    t0 = time.monotonic()
    try:
        if isinstance(cfg, SshFencerConfig):
            ok, reason = _ssh(cfg, target)
        elif isinstance(cfg, CommandFencerConfig):
            ok, reason = _command(cfg, target, env)
        else:
            ok, reason = True, "lease-wait needs no path to the peer"
    except Exception as e:  # noqa: BLE001 - a broken probe is a dead path, not a crash
        ok, reason = False, f"probe error: {type(e).__name__}: {e}"
    return ProbeResult(ok, reason, time.monotonic() - t0)


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
        "LogLevel": "ERROR",
        # Cheapest first: OpenSSH 9's default, sntrup761x25519, costs ~50 ms of CPU on
        # each side per login (61 -> 9 ms measured on the client); all of these are
        # also offered by paramiko, which does the real fence.
        "KexAlgorithms": "curve25519-sha256,curve25519-sha256@libssh.org,"
        "ecdh-sha2-nistp256,diffie-hellman-group14-sha256",
    }
    argv = [client, "-F", "/dev/null", "-T", "-n", "-p", str(cfg.port), "-l", cfg.user]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    return [*argv, target.address, "fence-self --dry-run"]


def _ssh(cfg: SshFencerConfig, target: FenceTarget) -> tuple[bool, str]:
    client = shutil.which(SSH)
    if client is None:
        return False, "the OpenSSH client (ssh) is not installed: cannot probe"
    for path, what in ((cfg.known_hosts, "known_hosts"), (cfg.key_file, "key file")):
        if not os.access(path, os.R_OK):
            return False, f"{what} {path} is not readable"
    where = f"[{target.address}]:{cfg.port}"
    try:
        res = subprocess.run(
            ssh_argv(cfg, target, client),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=cfg.timeout,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired:
        return False, f"ssh probe to {where} did not finish within {cfg.timeout:g}s"
    err = last_line(res.stderr)
    if res.returncode == SSH_FAILED:
        return False, f"ssh to {where}: {_explain(err)}"
    out = last_line(res.stdout) or err
    if res.returncode != 0:
        rc = res.returncode
        return False, f"connected and authenticated, but remote dry run exited {rc}: {out}"
    return True, f"connected and authenticated; remote dry run: {out}"


def _explain(err: str) -> str:
    if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION" in err:
        return f"host key unknown or CHANGED (not as in known_hosts): {err}"
    if "Permission denied" in err:
        return f"authentication with the fence key failed: {err}"
    return err or "ssh failed without a message"


def _command(
    cfg: CommandFencerConfig, target: FenceTarget, env: Mapping[str, str]
) -> tuple[bool, str]:
    if cfg.check_argv is None:
        o = CommandFencer(cfg).check(target)
        return o.ok, f"{o.reason} (no check_argv: only the program was checked)"
    from failoverd.resources import run_command

    subst = {"{node}": target.node, "{address}": target.address}
    argv = list(cfg.check_argv)
    for key, value in subst.items():
        argv = [a.replace(key, value) for a in argv]
    res = run_command(argv, {**env, "FAILOVERD_TARGET": target.node}, cfg.timeout)
    last = f": {res.last_line()}" if res.last_line() else ""
    if res.error:
        return False, f"cannot run {argv[0]}: {res.error}"
    if res.timed_out:
        return False, f"{argv[0]} did not finish within {cfg.timeout:g}s (killed)"
    return res.ok, f"check {argv[0]} exited {res.returncode}{last}"
