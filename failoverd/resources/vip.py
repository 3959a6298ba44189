"""The service IP as a resource: the address on start, its removal verified on stop,
and the gratuitous ARP that tells clients and switches where it now lives.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections.abc import Mapping, Sequence
from enum import Enum

from failoverd.config.model import VipResourceConfig
from failoverd.config.order import resource_name
from failoverd.observe import fastlog
from failoverd.process import CommandOutcome, run_command
from failoverd.resources import garp
from failoverd.resources.base import ResourceError, command_error, failure, ms_since

log = fastlog.get_logger(__name__)  # no structlog in fence-self


class ArpingFlavour(Enum):
    IPUTILS = "iputils"  # arping -U -c 1 -I IFACE IP
    HABETS = "habets"  # arping -U -c 1 -w 0 -i IFACE -S IP IP (Thomas Habets' arping)
    MISSING = "missing"


class GratuitousArp:
    """Announces that this host now owns an IPv4 address (unsolicited ARP).

    Without it clients and switches keep the old owner's MAC in their ARP caches
    and are black-holed until the entries expire (30-52 s measured).
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
        key: str = "resource",
    ):
        self.cfg = cfg
        self.key = key
        self.timeout = cfg.timeout
        self.ip = tuple(ip)  # a prefix such as ("ip", "netns", "exec", "lab", "ip") in tests
        self.iface_addr = ipaddress.ip_interface(cfg.address)
        self.name = resource_name(cfg, key)
        self.after = cfg.after  # what it starts after (config/order.py)
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
            raise command_error(outcome, self.key, "start", self.name)
        if self.iface_addr.version == 6:
            reason = "unsolicited NA not implemented"
            log.warning("arp_skipped", address=self.cfg.address, reason=reason)
        elif self.cfg.arp_count > 0:
            self._announce(deadline, env)
        log.info("resource_started", resource=self.name, took_ms=ms_since(started))

    def _announce(self, deadline: float, env: Mapping[str, str]) -> None:
        # The first announcement before returning: clients must learn the new owner
        # at once. A failed announcement does not fail the start: the address is
        # ours, and clients still find us once their ARP entries expire.
        self.arp.send(_left(deadline))
        if self.cfg.arp_count > 1:
            self._cancel = threading.Event()
            self._announcer = threading.Thread(
                target=self._announce_rest, args=(self._cancel, env), name="vip-arp", daemon=True
            )
            self._announcer.start()

    def _announce_rest(self, cancel: threading.Event, env: Mapping[str, str]) -> None:
        # Repeats cover switches and hosts that missed the first packet.
        for _ in range(self.cfg.arp_count - 1):
            if cancel.wait(self.cfg.arp_interval):
                return
            # Only this daemon's stop() sets `cancel`. A daemon frozen during the
            # wait may have been fenced meanwhile: fence-self, run here by the peer,
            # took the address away, and the peer now serves it. An announcement then
            # would pull clients to a node that no longer answers, so each repeat
            # first looks that the address is still on the interface, right before
            # it is sent. A probe that cannot tell counts as gone: the first
            # announcement went out with the address; repeats are a second chance.
            present = self._present(env, self.timeout)
            if not present:
                why = "address gone" if present is False else "could not verify the address"
                log.warning(
                    "arp_stopped",
                    address=self.cfg.address,
                    interface=self.cfg.interface,
                    reason=why,
                )
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
            why = "could not verify the address is gone"
            raise ResourceError(failure(self.key, "stop", self.name, why))
        if present:
            why = f"address still present (ip addr del {outcome.summary()})"
            raise ResourceError(failure(self.key, "stop", self.name, why))
        log.info("vip_removed", address=self.cfg.address, interface=self.cfg.interface)

    def kill(self, env: Mapping[str, str]) -> None:
        """The fast path of a fence: removing an address is already instant."""
        self.stop(env)

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
