"""What the active node runs (DESIGN.md §4, §9): the service IP, systemd units, commands.

Resources are started in configured order on promotion and stopped in reverse on
demotion. Every call is bounded by the resource's ``timeout``; a resource never
leaves a child process running past its deadline, except the daemon a start
command deliberately launches.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Protocol

from failoverd.config import (
    CommandResourceConfig,
    OcfResourceConfig,
    ResourceConfig,
    SystemdResourceConfig,
    VipResourceConfig,
)
from failoverd.observe import fastlog
from failoverd.process import CommandOutcome, run_command
from failoverd.resources import garp, systemd_dropin

log = fastlog.get_logger(__name__)  # no structlog in fence-self


class ResourceError(Exception):
    """A resource could not be started or stopped; the message says what and why."""


class ResourceTimeout(ResourceError):
    """A resource command ran past its timeout and was killed: whatever it started
    outside its process group may live on (failoverd/resources/abandoned.py)."""


class Resource(Protocol):
    name: str
    timeout: float  # the bound of one start/stop call (the daemon budgets with it)

    def start(self, env: Mapping[str, str]) -> None: ...

    def stop(self, env: Mapping[str, str]) -> None: ...

    def is_running(self, env: Mapping[str, str]) -> bool | None: ...


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _fail(outcome: CommandOutcome, what: str) -> ResourceError:
    if outcome.timed_out:
        return ResourceTimeout(f"{what}: {outcome.describe()}")
    return ResourceError(f"{what}: {outcome.describe()}")


# -- command -------------------------------------------------------------------------

# Wrappers skipped when naming a command resource after the program it runs.
_WRAPPERS = re.compile(r"^(env|sudo|nice|ionice|timeout|sh|bash|dash|python[0-9.]*|perl)$")


def command_label(argv: Sequence[str]) -> str:
    """'python3 -m tests.toyservice start' -> 'tests.toyservice'."""
    for arg in argv:
        base = os.path.basename(arg)
        if arg.startswith("-") or _WRAPPERS.match(base):
            continue
        return base[:40]
    return os.path.basename(argv[0])[:40] if argv else "?"


class CommandResource:
    def __init__(self, cfg: CommandResourceConfig, name: str | None = None):
        self.cfg = cfg
        self.timeout = cfg.timeout
        self.name = name or f"command {command_label(cfg.start)}"

    def start(self, env: Mapping[str, str]) -> None:
        started = time.monotonic()
        self._run(self.cfg.start, env, "start")
        log.info("resource_started", resource=self.name, took_ms=_ms_since(started))

    def stop(self, env: Mapping[str, str]) -> None:
        # Idempotence is the stop command's contract: stopping a stopped service exits 0.
        self._run(self.cfg.stop, env, "stop")

    def is_running(self, env: Mapping[str, str]) -> bool | None:
        if not self.cfg.status:
            return None
        outcome = run_command(self.cfg.status, env, self.timeout)
        if outcome.returncode is None:
            return None
        return outcome.ok

    def _run(self, argv: Sequence[str], env: Mapping[str, str], what: str) -> None:
        outcome = run_command(argv, env, self.timeout)
        if not outcome.ok:
            raise _fail(outcome, f"{self.name} {what}")


# -- systemd -------------------------------------------------------------------------

# `systemctl is-active` exit codes that mean "definitely not running":
# 3 inactive/failed, 4 no such unit. Anything else (1: cannot talk to systemd) is "cannot tell".
_INACTIVE = (3, 4)


class SystemdResource:
    """systemctl start/stop/is-active; the units get FAILOVERD_* through a runtime
    drop-in written before each start (failoverd.resources.systemd_dropin)."""

    def __init__(
        self,
        cfg: SystemdResourceConfig,
        systemctl: str = "systemctl",
        unit_dir: Path | None = None,
    ):
        self.cfg = cfg
        self.timeout = cfg.timeout
        self.systemctl = systemctl
        self.unit_dir = unit_dir
        self.name = "systemd " + " ".join(cfg.units)

    def _unit_dir(self) -> Path:
        return self.unit_dir if self.unit_dir is not None else systemd_dropin.RUNTIME_UNIT_DIR

    def start(self, env: Mapping[str, str]) -> None:
        started = time.monotonic()
        deadline = started + self.timeout
        try:
            systemd_dropin.write_dropins(self._unit_dir(), self.cfg.units, env)
        except (OSError, ValueError) as e:
            # A unit started without its epoch could not tell a stale active from
            # the current one: not starting is the safe failure.
            why = f"cannot write the FAILOVERD_* drop-in: {e}"
            raise ResourceError(f"{self.name} start: {why}") from e
        outcome = run_command([self.systemctl, "daemon-reload"], env, self.timeout)
        if not outcome.ok:
            raise _fail(outcome, f"{self.name} start (daemon-reload for the drop-in)")
        left = deadline - time.monotonic()
        outcome = run_command([self.systemctl, "start", *self.cfg.units], env, left)
        if not outcome.ok:
            raise _fail(outcome, f"{self.name} start")
        log.info("resource_started", resource=self.name, took_ms=_ms_since(started))

    def stop(self, env: Mapping[str, str]) -> None:
        deadline = time.monotonic() + self.timeout
        units = list(reversed(self.cfg.units))
        outcome = run_command([self.systemctl, "stop", *units], env, self.timeout)
        if outcome.ok:
            self._remove_dropins()
            return
        if outcome.timed_out:
            raise _fail(outcome, f"{self.name} stop")
        # `stop` also fails for a unit that is not loaded at all. What counts is that
        # nothing is left running, so judge by is-active rather than by the exit code.
        states = [self._active(u, env, deadline - time.monotonic()) for u in units]
        if all(s is False for s in states):
            error = outcome.describe()
            log.warning("systemd_stop_failed_but_inactive", resource=self.name, error=error)
            self._remove_dropins()
            return
        raise _fail(outcome, f"{self.name} stop")

    def _remove_dropins(self) -> None:
        # Only tidiness (the next start rewrites them): a problem is logged, not raised.
        problems = systemd_dropin.remove_dropins(self._unit_dir(), self.cfg.units)
        if problems:
            log.warning("systemd_dropin_not_removed", resource=self.name, problems=problems)

    def is_running(self, env: Mapping[str, str]) -> bool | None:
        deadline = time.monotonic() + self.timeout
        states = [self._active(u, env, deadline - time.monotonic()) for u in self.cfg.units]
        if all(s is True for s in states):
            return True
        if any(s is False for s in states):
            return False
        return None

    def _active(self, unit: str, env: Mapping[str, str], timeout: float) -> bool | None:
        outcome = run_command([self.systemctl, "is-active", "--quiet", unit], env, timeout)
        if outcome.returncode == 0:
            return True
        if outcome.returncode in _INACTIVE:
            return False
        return None


# -- vip -----------------------------------------------------------------------------


class ArpingFlavour(Enum):
    IPUTILS = "iputils"  # arping -U -c 1 -I IFACE IP
    HABETS = "habets"  # arping -U -c 1 -w 0 -i IFACE -S IP IP (Thomas Habets' arping)
    MISSING = "missing"


class GratuitousArp:
    """Announces that this host now owns an IPv4 address (unsolicited ARP).

    Without it clients and switches keep the old owner's MAC in their ARP caches
    and are black-holed until the entries expire (30-52 s measured, DESIGN.md §9).
    """

    def __init__(
        self,
        arping: Sequence[str],
        interface: str,
        ip: str,
        timeout: float,
        native: bool = False,
    ):
        self.arping = tuple(arping)
        self.interface = interface
        self.ip = ip
        self.timeout = timeout
        # Send the frame ourselves (failoverd/resources/garp.py), arping only as the fallback.
        # Off unless asked for: a test that fakes arping must not put real frames
        # on this machine's interfaces.
        self.native = native
        self._flavour: ArpingFlavour | None = None
        self._use_reply_mode = False  # iputils builds without -U fall back to -A

    def flavour(self) -> ArpingFlavour:
        if self._flavour is None:
            self._flavour = self._detect()
            log.info("arping_detected", flavour=self._flavour.value, arping=" ".join(self.arping))
        return self._flavour

    def _detect(self) -> ArpingFlavour:
        probes = [run_command([*self.arping, opt], {}, self.timeout) for opt in ("--help", "-V")]
        if all(p.error for p in probes):
            return ArpingFlavour.MISSING
        text = " ".join(p.output for p in probes).lower()
        if "habets" in text:
            return ArpingFlavour.HABETS
        # iputils ("arping from iputils ...") and anything unknown: iputils syntax,
        # the more widespread one, with the -A fallback below.
        return ArpingFlavour.IPUTILS

    def send(self, timeout: float) -> bool:
        """One announcement; True when a packet went out."""
        if self.native:
            try:
                garp.announce(self.interface, self.ip)
            except OSError as e:
                # Permanent in practice (no CAP_NET_RAW, not Ethernet): arping from now on.
                self.native = False
                log.warning("arp_socket_failed", address=self.ip, error=str(e), next="arping")
            else:
                log.info("arp_announced", address=self.ip, interface=self.interface, via="socket")
                return True
        flavour = self.flavour()
        if flavour is ArpingFlavour.MISSING:
            log.warning("arp_skipped", address=self.ip, reason="arping not installed")
            return False
        outcome = _arping(self._argv(flavour), timeout)
        if not _sent(outcome) and flavour is ArpingFlavour.IPUTILS and not self._use_reply_mode:
            # Some builds lack -U; a gratuitous ARP reply (-A) updates caches as well.
            self._use_reply_mode = True
            outcome = _arping(self._argv(flavour), timeout)
        if _sent(outcome):
            log.info("arp_announced", address=self.ip, interface=self.interface)
            return True
        error = outcome.describe()
        log.warning("arp_failed", address=self.ip, interface=self.interface, error=error)
        return False

    def _argv(self, flavour: ArpingFlavour) -> list[str]:
        if flavour is ArpingFlavour.HABETS:
            # -w 0: do not wait a second for replies that never come; -S: source = the VIP.
            opts = ["-U", "-c", "1", "-w", "0", "-i", self.interface, "-S", self.ip]
        else:
            opts = ["-A" if self._use_reply_mode else "-U", "-c", "1", "-I", self.interface]
        return [*self.arping, *opts, self.ip]


_ARP_SENT = re.compile(r"(\d+) packets transmitted|Sent (\d+) probe")


def _arping(argv: Sequence[str], timeout: float) -> CommandOutcome:
    # Back as soon as arping reports the packet sent, not ~40 ms later when it has
    # exited (failoverd/resources/announce.py): the promotion goes on to the next resource.
    # Imported here: fence-self, which loads this module, never announces.
    from failoverd.resources.announce import run_until_reported

    r = run_until_reported(argv, timeout, _ARP_SENT)
    return CommandOutcome(tuple(argv), r.returncode, r.output, r.timed_out, r.error, timeout)


def _sent(outcome: CommandOutcome) -> bool:
    # Nobody replies to an unsolicited ARP, and Habets' arping exits 1 when nobody
    # replied: judge by what it says it sent, not only by the exit code.
    if outcome.ok:
        return True
    m = _ARP_SENT.search(outcome.output)
    return bool(m and int(m.group(1) or m.group(2)) > 0)


class VipResource:
    """The service IP: `ip addr replace` on start, `ip addr del` + verification on stop."""

    def __init__(
        self,
        cfg: VipResourceConfig,
        ip: Sequence[str] = ("ip",),
        arping: Sequence[str] = ("arping",),
        native_arp: bool = False,  # GratuitousArp.native; build_resource turns it on
    ):
        self.cfg = cfg
        self.timeout = cfg.timeout
        self.ip = tuple(ip)  # a prefix such as ("ip", "netns", "exec", "lab", "ip") in tests
        self.iface_addr = ipaddress.ip_interface(cfg.address)
        self.name = f"vip {cfg.address} on {cfg.interface}"
        self.arp = GratuitousArp(
            arping, cfg.interface, str(self.iface_addr.ip), cfg.timeout, native=native_arp
        )
        self._cancel = threading.Event()
        self._announcer: threading.Thread | None = None

    def prepare(self) -> None:
        """Find out which arping is installed now, at daemon start, rather than on
        the promotion path (two runs of it, ~11 ms measured in the lab)."""
        if self.iface_addr.version == 4 and self.cfg.arp_count > 0:
            self.arp.flavour()

    def start(self, env: Mapping[str, str]) -> None:
        started = time.monotonic()
        deadline = started + self.timeout
        self._stop_announcer()
        # replace, not add: idempotent when the address is already there.
        argv = [*self.ip, "addr", "replace", self.cfg.address, "dev", self.cfg.interface]
        outcome = run_command(argv, env, _left(deadline))
        if not outcome.ok:
            raise _fail(outcome, f"{self.name} start")
        if self.iface_addr.version == 6:
            reason = "unsolicited NA not implemented"
            log.warning("arp_skipped", address=self.cfg.address, reason=reason)
        elif self.cfg.arp_count > 0:
            self._announce(deadline)
        log.info("resource_started", resource=self.name, took_ms=_ms_since(started))

    def _announce(self, deadline: float) -> None:
        # The first announcement before returning: clients must learn the new owner
        # at once. A failed announcement does not fail the start: the address is
        # ours, and clients still find us once their ARP entries expire.
        self.arp.send(_left(deadline))
        if self.cfg.arp_count > 1:
            self._cancel = threading.Event()
            self._announcer = threading.Thread(
                target=self._announce_rest, args=(self._cancel,), name="vip-arp", daemon=True
            )
            self._announcer.start()

    def _announce_rest(self, cancel: threading.Event) -> None:
        # Repeats cover switches and hosts that missed the first packet.
        for _ in range(self.cfg.arp_count - 1):
            if cancel.wait(self.cfg.arp_interval):
                return
            self.arp.send(self.timeout)

    def _stop_announcer(self) -> None:
        # Announcing an address we no longer hold would pull clients to the wrong node.
        self._cancel.set()
        if self._announcer is not None:
            self._announcer.join(timeout=self.timeout)
            self._announcer = None

    def stop(self, env: Mapping[str, str]) -> None:
        deadline = time.monotonic() + self.timeout
        self._stop_announcer()
        argv = [*self.ip, "addr", "del", self.cfg.address, "dev", self.cfg.interface]
        outcome = run_command(argv, env, _left(deadline))
        if not outcome.ok and not _absent(outcome):
            log.warning("vip_del_failed", resource=self.name, error=outcome.describe())
        present = self._present(env, _left(deadline))
        if present is None:
            raise ResourceError(f"{self.name} stop: could not verify the address is gone")
        if present:
            raise ResourceError(f"{self.name} stop: address still present ({outcome.describe()})")
        log.info("vip_removed", address=self.cfg.address, interface=self.cfg.interface)

    def is_running(self, env: Mapping[str, str]) -> bool | None:
        return self._present(env, self.timeout)

    def _present(self, env: Mapping[str, str], timeout: float) -> bool | None:
        argv = [*self.ip, "-o", "addr", "show", "dev", self.cfg.interface]
        outcome = run_command(argv, env, timeout)
        if not outcome.ok:
            # No such interface: then the address cannot be on it.
            return False if _no_device(outcome) else None
        for line in outcome.output.splitlines():
            tokens = line.split()
            for family, value in zip(tokens, tokens[1:], strict=False):
                if family in ("inet", "inet6") and _same_ip(value, self.iface_addr):
                    return True
        return False


def _left(deadline: float) -> float:
    # A floor, so that a step still gets a chance when an earlier one used the budget up.
    return max(0.2, deadline - time.monotonic())


def _same_ip(value: str, want: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> bool:
    try:
        return ipaddress.ip_interface(value).ip == want.ip
    except ValueError:
        return False


def _absent(outcome: CommandOutcome) -> bool:
    text = outcome.output.lower()
    gone = "cannot assign requested address" in text or "address not found" in text
    return gone or _no_device(outcome)


def _no_device(outcome: CommandOutcome) -> bool:
    text = outcome.output.lower()
    return "does not exist" in text or "cannot find device" in text


# -- building and stopping -----------------------------------------------------------


def build_resource(cfg: ResourceConfig) -> Resource:
    if isinstance(cfg, VipResourceConfig):
        return VipResource(cfg, native_arp=True)
    if isinstance(cfg, SystemdResourceConfig):
        return SystemdResource(cfg)
    if isinstance(cfg, CommandResourceConfig):
        return CommandResource(cfg)
    if isinstance(cfg, OcfResourceConfig):
        from failoverd.resources.ocf import OcfResource  # imports this module: a late import

        return OcfResource(cfg)
    raise TypeError(f"unknown resource config: {cfg!r}")


def build_resources(cfgs: Iterable[ResourceConfig]) -> list[Resource]:
    return [build_resource(c) for c in cfgs]


def prepare_all(resources: Sequence[Resource]) -> None:
    """Work a resource can do ahead of its first start (the daemon, once at start)."""
    for res in resources:
        prepare = getattr(res, "prepare", None)
        if prepare is not None:
            prepare()


def stop_all(resources: Sequence[Resource], env: Mapping[str, str]) -> list[str]:
    """Stop in reverse start order; keep going past failures so that as much as
    possible is stopped. Returns one '<name>: <reason>' per failure (empty: all stopped)."""
    failures: list[str] = []
    for res in reversed(resources):
        started = time.monotonic()
        try:
            res.stop(env)
        except Exception as e:  # one broken resource must not keep the others running
            failures.append(f"{res.name}: {e}")
            log.error("resource_stop_failed", resource=res.name, error=str(e))
            continue
        log.info("resource_stopped", resource=res.name, took_ms=_ms_since(started))
    return failures
