"""systemd's notify protocol (without libsystemd) and the watchdog.

The watchdog is the last line of defence for what the local lease cannot cover:
a daemon frozen (SIGSTOP, VM stall, deadlock) while Postfix keeps running. The
daemon pets it only while its main loop makes progress and, when active, only
while the local lease is valid; if the petting stops, systemd kills the daemon
(WatchdogSec=) and/or the kernel reboots the machine (/dev/watchdog). The
`lease-wait` fencer relies on that: it waits out T + watchdog timeout + margin.
So the device is not petted either while this node's own stop cannot be trusted:
resources that would not stop (dirty), or an abandoned operation that may still
complete (failoverd/resources/abandoned.py).

So a configured device must be *armed* before the node contends: open, set to the
configured timeout (WDIOC_SETTIMEOUT), that timeout read back (WDIOC_GETTIMEOUT) and
no longer than configured, and taking pets. Anything less is `Watchdog.problem`,
which makes the node ineligible and an active demote (failoverd/node/decision.py);
the member status publishes the device's state (`Watchdog.published`), and a peer's
lease-wait trusts nothing else.

Neither sd_notify() nor Watchdog.pet() ever raises: a failure to talk to systemd
or the device must not crash the main loop (it is logged; a watchdog that is not
petted fires, which is the safe direction).
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import time
from collections.abc import Callable, Mapping

import structlog

from failoverd.config import WatchdogConfig
from failoverd.zk.znodes import WatchdogStatus

log = structlog.get_logger(__name__)

# <linux/watchdog.h>: _IOWR('W', 6, int) and _IOR('W', 7, int).
WDIOC_SETTIMEOUT = 0xC0045706
WDIOC_GETTIMEOUT = 0x80045707
# Writing this character right before close() disarms the device (unless the
# kernel was built with CONFIG_WATCHDOG_NOWAYOUT, where nothing disarms it).
WATCHDOG_MAGIC_CLOSE = b"V"

# Pet at a quarter of the timeout: three pets may be lost or late (a slow loop
# iteration, a scheduling hiccup) before the watchdog fires.
PET_FRACTION = 4


NO_DEVICE = "no watchdog device configured"


class WatchdogError(Exception):
    """The watchdog device could not be opened."""


def _address(value: str) -> str | None:
    if value.startswith("@"):
        # Abstract namespace: the name starts with a NUL byte instead of '@'.
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and other transports are not supported


def sd_notify(message: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send one notification ("READY=1", "WATCHDOG=1", ...) to $NOTIFY_SOCKET.

    False when the variable is unset (not started by systemd with Type=notify)
    or the send failed; never raises."""
    path = env.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = _address(path)
    if address is None:
        log.warning("notify_socket_unsupported", socket=path)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
        return True
    except (OSError, ValueError, UnicodeError) as e:
        log.warning("notify_failed", socket=path, error=str(e))
        return False


def _one_line(text: str) -> str:
    # A newline would start a new assignment: "STATUS=x\nREADY=1" must not be
    # sendable through a reason text.
    return " ".join(text.splitlines())


def ready(status: str, env: Mapping[str, str] = os.environ) -> bool:
    """Tell systemd start-up is complete (Type=notify), with a status line."""
    return sd_notify(f"READY=1\nSTATUS={_one_line(status)}", env)


def status(text: str, env: Mapping[str, str] = os.environ) -> bool:
    """Set the line `systemctl status` shows for the daemon."""
    return sd_notify(f"STATUS={_one_line(text)}", env)


def stopping(env: Mapping[str, str] = os.environ) -> bool:
    """Tell systemd a clean shutdown has begun (it also stops expecting pets)."""
    return sd_notify("STOPPING=1", env)


class Watchdog:
    """Petted by the daemon's main loop only while it makes progress and, when
    active, only while the local lease is valid.

    Two independent watchdogs, either or both configured:
    * systemd (`WatchdogSec=` in the unit): WATCHDOG=1 over the notify socket;
      when it stops, systemd kills and restarts the daemon.
    * a device (/dev/watchdog): the kernel reboots the machine when it stops,
      which also stops Postfix however stuck the daemon is.
    """

    def __init__(
        self,
        cfg: WatchdogConfig | None,
        env: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = cfg
        self.env = env
        self.clock = clock
        self.systemd_usec = self._systemd_usec(cfg, env)
        self.device_fd: int | None = None
        # The device timeout actually in force, as the driver reports it; None while unknown.
        self.device_timeout: float | None = None
        # Why the device is not armed ("" when it is, or when none is configured).
        self._unarmed = "not opened yet"
        self._last_systemd: float | None = None
        self._last_device: float | None = None
        self._last_open_attempt: float | None = None
        self.closed = False

    @staticmethod
    def _systemd_usec(cfg: WatchdogConfig | None, env: Mapping[str, str]) -> int | None:
        if cfg is None or not cfg.systemd:
            return None
        raw = env.get("WATCHDOG_USEC")
        if not raw:
            log.warning(
                "systemd_watchdog_inactive",
                hint="watchdog.systemd is set but WATCHDOG_USEC is not: WatchdogSec= missing?",
            )
            return None
        try:
            usec = int(raw)
        except ValueError:
            log.warning("systemd_watchdog_inactive", watchdog_usec=raw, hint="not an integer")
            return None
        pid = env.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            # The pets are meant for another process (e.g. we were started by
            # a wrapper); sending ours would be rejected or, worse, mistaken.
            log.info("systemd_watchdog_not_ours", watchdog_pid=pid, pid=os.getpid())
            return None
        if usec <= 0:
            return None
        if abs(usec / 1e6 - cfg.timeout) > 1e-3:
            # lease-wait fencing on the peers assumes watchdog.timeout.
            log.warning(
                "systemd_watchdog_mismatch",
                watchdog_sec=usec / 1e6,
                configured=cfg.timeout,
                hint="WatchdogSec= in the unit must match watchdog.timeout",
            )
        return usec

    # -- intervals -----------------------------------------------------------

    @property
    def usec(self) -> int | None:
        """systemd's WatchdogSec in microseconds; None when the systemd watchdog is off."""
        return self.systemd_usec

    @property
    def systemd_interval(self) -> float | None:
        return None if self.systemd_usec is None else self.systemd_usec / 1e6 / PET_FRACTION

    @property
    def device_interval(self) -> float | None:
        if self.cfg is None or self.cfg.device is None:
            return None
        timeout = self.cfg.timeout
        if self.device_timeout is not None:
            timeout = min(timeout, self.device_timeout)  # never slower than the device needs
        return timeout / PET_FRACTION

    @property
    def enabled(self) -> bool:
        return self.systemd_usec is not None or (
            self.cfg is not None and self.cfg.device is not None
        )

    # -- armed or not -----------------------------------------------------------

    @property
    def problem(self) -> str:
        """Why the configured device is not armed, one sentence for `why`; "" when it
        is armed or when no device is configured (the device is optional)."""
        if self.cfg is None or self.cfg.device is None or not self._unarmed:
            return ""
        return f"watchdog device {self.cfg.device} not armed: {self._unarmed}"

    @property
    def armed(self) -> bool:
        return self.cfg is not None and self.cfg.device is not None and not self._unarmed

    def published(self) -> WatchdogStatus:
        """What the member status says about the device; a peer's lease-wait reads it."""
        if self.cfg is None or self.cfg.device is None:
            return WatchdogStatus(armed=False, timeout=None, why=NO_DEVICE)
        return WatchdogStatus(self.armed, self.device_timeout, self.problem)

    # -- petting -------------------------------------------------------------

    def pet(self, device: bool = True) -> None:
        """Keep both watchdogs quiet for another timeout; cheap to call often (rate-limited).

        `device=False`: systemd's only. The device then fires `timeout` after its last
        pet and resets the machine (the daemon's choice, when its own stop cannot be
        trusted: failoverd/node/daemon.py `_pet`)."""
        if self.closed:
            return
        now = self.clock()
        interval = self.systemd_interval
        if interval is not None and (
            self._last_systemd is None or now - self._last_systemd >= interval
        ):
            # Rate-limited even when the send fails: a broken socket is logged
            # once per interval, not once per loop iteration.
            self._last_systemd = now
            sd_notify("WATCHDOG=1", self.env)
        if device and self.cfg is not None and self.cfg.device is not None:
            self._pet_device(now)

    def _pet_device(self, now: float) -> None:
        interval = self.device_interval
        assert interval is not None
        if self.device_fd is None:
            # Retry a failed open no faster than we would pet.
            if self._last_open_attempt is not None and now - self._last_open_attempt < interval:
                return
            self._last_open_attempt = now
            try:
                self.open()
            except WatchdogError as e:
                log.critical("watchdog_device_unavailable", error=str(e))
                return
            interval = self.device_interval
            assert interval is not None
        if self._last_device is not None and now - self._last_device < interval:
            return
        assert self.device_fd is not None
        try:
            os.write(self.device_fd, b"\0")
            self._last_device = now
        except OSError as e:
            # A device that takes no pets may be gone (its driver unbound): nothing
            # says it still resets the machine, so it is not armed any more. Closed
            # without the magic character (if it is alive it fires: the safe side)
            # and opened afresh at the next pet, which arms it again if it works.
            device = self.cfg.device if self.cfg else None
            log.error("watchdog_pet_failed", device=device, error=str(e))
            self._unarmed = f"petting it failed: {e.strerror or e}"
            fd, self.device_fd = self.device_fd, None
            self._last_open_attempt = now
            try:
                os.close(fd)
            except OSError:
                pass

    def open(self) -> None:
        """Open (and thereby arm) the device and set its timeout; raises WatchdogError
        when it cannot be opened. A device that opens but does not take or report the
        configured timeout stays open and petted (closing it would reset the machine
        or, with the 'V', disarm it) and is not armed: see `problem`.

        pet() calls this lazily; the daemon pets once before its first loop cycle,
        so the device is armed before the node can contend."""
        if self.device_fd is not None or self.cfg is None or self.cfg.device is None:
            return
        device = self.cfg.device
        try:
            fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            self._unarmed = f"cannot open {device}: {e.strerror or e}"
            raise WatchdogError(self._unarmed) from e
        self.device_fd = fd
        self._last_device = None  # a fresh open is petted at once
        self._unarmed = self._set_timeout(fd, device)
        if self._unarmed:
            return
        log.info("watchdog_armed", device=device, timeout=self.device_timeout)

    def _set_timeout(self, fd: int, device: str) -> str:
        """Set the configured timeout and read back the one in force; why the device
        is not armed, or "". Each peer's lease-wait waits watchdog.timeout for this
        device to reset a frozen machine: a timeout that is unknown or longer breaks
        that arithmetic, so either makes this node ineligible."""
        assert self.cfg is not None
        # Round down: a shorter timeout than configured only resets sooner.
        wanted = max(1, int(self.cfg.timeout))
        try:
            fcntl.ioctl(fd, WDIOC_SETTIMEOUT, struct.pack("i", wanted))
        except OSError as e:
            # A regular file, or a driver with a fixed timeout.
            log.critical("watchdog_timeout_not_set", device=device, wanted=wanted, error=str(e))
            self.device_timeout, _ = self._read_timeout(fd)
            return f"it did not take timeout {wanted}s (WDIOC_SETTIMEOUT: {e.strerror or e})"
        self.device_timeout, unknown = self._read_timeout(fd)
        if self.device_timeout is None:
            log.critical("watchdog_timeout_unknown", device=device, error=unknown)
            return f"its timeout is unknown (WDIOC_GETTIMEOUT: {unknown})"
        if self.device_timeout > self.cfg.timeout:
            log.critical(
                "watchdog_timeout_longer",
                device=device,
                timeout=self.device_timeout,
                configured=self.cfg.timeout,
                hint="the driver rounded up; lease-wait fencing on peers waits too little",
            )
            return (
                f"its timeout is {self.device_timeout:g}s, "
                f"longer than watchdog.timeout ({self.cfg.timeout:g}s)"
            )
        return ""

    @staticmethod
    def _read_timeout(fd: int) -> tuple[float | None, str]:
        """(the timeout the driver reports, None if it reports none; why not)."""
        try:
            out = fcntl.ioctl(fd, WDIOC_GETTIMEOUT, struct.pack("i", 0))
        except OSError as e:
            return None, str(e.strerror or e)
        actual = struct.unpack("i", out)[0]
        return (float(actual), "") if actual > 0 else (None, f"it reports {actual}s")

    def close(self, clean: bool) -> None:
        """Stop petting. clean: disarm the device with the magic 'V' (a clean
        shutdown; resources are stopped). Unclean: close without it, so the
        machine reboots at the timeout — that is the point: resources may
        still be running and nothing else will stop them."""
        self.closed = True
        self._unarmed = "failoverd stopped petting it"
        fd, self.device_fd = self.device_fd, None
        if fd is None:
            return
        device = self.cfg.device if self.cfg else None
        try:
            if clean:
                os.write(fd, WATCHDOG_MAGIC_CLOSE)
        except OSError as e:
            log.error("watchdog_disarm_failed", device=device, error=str(e))
        finally:
            os.close(fd)
        if clean:
            log.info("watchdog_disarmed", device=device)
        else:
            log.critical(
                "watchdog_left_armed",
                device=device,
                timeout=self.device_timeout or (self.cfg.timeout if self.cfg else None),
                hint="unclean stop: the machine reboots when the watchdog fires",
            )
