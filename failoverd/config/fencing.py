"""The ``fencing:`` list: ssh, command (power) and lease-wait methods."""

from __future__ import annotations

import os

from failoverd.config.model import (
    NET_CHECKS,
    CommandFencerConfig,
    FencerConfig,
    HealthConfig,
    LeaseWaitFencerConfig,
    SshFencerConfig,
    WatchdogConfig,
)
from failoverd.config.reading import Section, check_private, secs
from failoverd.config.schema import CHECK_INTERVAL_RANGE, kinds

# The keys each ``type`` of fencing method may have (schema.py).
FENCER_KEYS = kinds("fencing[]")


def fencer_config(
    kind: str, s: Section, health: HealthConfig, watchdog: WatchdogConfig | None
) -> FencerConfig:
    if kind == "ssh":
        return _ssh_fencer(s, health)
    if kind == "command":
        timeout = s.duration("timeout", CommandFencerConfig.timeout)
        return CommandFencerConfig(
            argv=s.argv("argv") or (),
            timeout=timeout,
            check_argv=s.argv("check_argv", required=False),
            check_interval=_check_interval(s, CommandFencerConfig.check_interval),
        )
    _lease_wait_needs_a_device(s, watchdog)
    return LeaseWaitFencerConfig()


def _lease_wait_needs_a_device(s: Section, watchdog: WatchdogConfig | None) -> None:
    """lease-wait trusts that a frozen or lease-less old active has been *reset* by
    the time the wait is over. Only a watchdog device (hardware, or softdog with
    nowayout) does that; systemd's watchdog restarts the daemon and leaves Postfix,
    the units and the VIP running (and a SIGSTOPped daemon cannot even act on it)."""
    msg = "lease-wait is only valid when watchdog is configured with a device (watchdog.device"
    if watchdog is None:
        why = "without one a frozen active keeps serving after its lease"
    elif not watchdog.device:
        why = (
            "watchdog.systemd only restarts the daemon and stops neither the resources nor "
            "the VIP, so a frozen active keeps serving after its lease"
        )
    else:
        return
    s.found.problem(s.at, f"{msg}, e.g. /dev/watchdog, on every member): {why}")


def _ssh_fencer(s: Section, health: HealthConfig) -> SshFencerConfig:
    key_file, known_hosts = s.text("key_file"), s.text("known_hosts")
    if key_file and os.path.exists(key_file):
        check_private(s.found, s.key("key_file"), key_file)
    for name, path in (("key_file", key_file), ("known_hosts", known_hosts)):
        if path and not os.path.exists(path):
            s.found.note(s.key(name), f"{path} does not exist yet: ssh fencing fails until it does")
    ports = s.ports("verify_ports")
    if ports is None:  # default: what this node serves, which the peer serves when active
        ports = tuple(dict.fromkeys(c.port for c in health.checks if c.type in NET_CHECKS))
    if not ports:
        msg = "no ports to verify: a fence is trusted on the remote command's exit status alone"
        s.found.note(s.key("verify_ports"), msg)
    timeout = s.duration("timeout", SshFencerConfig.timeout)
    return SshFencerConfig(
        user=s.text("user"),
        key_file=key_file,
        known_hosts=known_hosts,
        port=s.integer("port", SshFencerConfig.port, 1, 65535),
        timeout=timeout,
        connect_timeout=_ssh_connect_timeout(s, timeout),
        check_interval=_check_interval(s, SshFencerConfig.check_interval),
        verify_ports=ports,
    )


def _check_interval(s: Section, default: float) -> float:
    interval = s.duration("check_interval", default)
    low, high = CHECK_INTERVAL_RANGE
    if s.has("check_interval") and not low <= interval <= high:
        s.found.problem(
            s.key("check_interval"), f"must be {secs(low)} to {secs(high)}, got {secs(interval)}"
        )
    return interval


def _ssh_connect_timeout(s: Section, timeout: float) -> float:
    """The default, 0.5 s. On a LAN the peer's kernel answers a TCP connect within a
    millisecond, even while its userland is overloaded (the SSH banner that follows
    gets the whole timeout). Linux resends a lost SYN only after 1 s, so no value
    below 1 s survives a lost SYN and 1 s barely does: 0.5 s is as tolerant as 1 s
    and still 500 round trips long. A peer silent that long is powered off or cut
    off, and waiting longer only delays the next, stronger method. Giving up early is
    always safe: the chain moves on to that method, it never skips fencing."""
    connect = s.duration("connect_timeout", SshFencerConfig.connect_timeout)
    if s.has("connect_timeout") and connect > timeout:
        msg = f"{secs(connect)} is longer than timeout ({secs(timeout)}), "
        msg += "which bounds the whole fence"
        s.found.problem(s.key("connect_timeout"), msg)
    return min(connect, timeout)
