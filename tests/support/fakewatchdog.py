"""A stand-in for a watchdog driver's two timeout ioctls, so a regular file can stand in
for /dev/watchdog (a real device needs root and a kernel module; softdog cannot be
loaded in a container).

Unit tests put a FakeWatchdogDriver where failoverd/node/notify.py looks for `fcntl`.
Integration tests run the daemon as `python -m tests.support.fakewatchdog -c FILE`:
the same, then failoverd's own main, with the driver described by $FAKE_WATCHDOG:

    ok           takes every timeout it is given (a well-behaved driver)
    fixed        WDIOC_SETTIMEOUT fails (a driver with a fixed timeout) and
                 WDIOC_GETTIMEOUT too (it does not say which)
    fixed:N      WDIOC_SETTIMEOUT fails; WDIOC_GETTIMEOUT says N seconds
    longer:N     rounds every timeout up to N seconds
    unknown      takes the timeout but WDIOC_GETTIMEOUT fails

and, while the file named by $FAKE_WATCHDOG_GONE exists, the device is gone (its
driver unbound): writing to it and opening it fail with ENODEV.
"""

from __future__ import annotations

import errno
import os
import struct
import sys

from failoverd.node import notify
from failoverd.node.notify import WDIOC_GETTIMEOUT, WDIOC_SETTIMEOUT


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class FakeWatchdogDriver:
    """Answers the two ioctls notify.py sends; `fcntl.ioctl`'s signature and errors."""

    def __init__(
        self,
        settable: bool = True,
        gettable: bool = True,
        timeout: int | None = None,
        minimum: int = 0,
    ):
        self.settable, self.gettable = settable, gettable
        self.timeout, self.minimum = timeout, minimum
        self.calls: list[int] = []

    @classmethod
    def described(cls, text: str) -> FakeWatchdogDriver:
        kind, _, n = text.partition(":")
        if kind == "ok":
            return cls()
        if kind == "fixed":
            return cls(settable=False, gettable=bool(n), timeout=int(n) if n else None)
        if kind == "longer":
            return cls(minimum=int(n))
        if kind == "unknown":
            return cls(gettable=False)
        raise ValueError(f"FAKE_WATCHDOG={text!r}")

    def ioctl(self, fd: int, request: int, arg: bytes) -> bytes:
        self.calls.append(request)
        os.fstat(fd)  # a closed fd fails as it would with the real call
        if request == WDIOC_SETTIMEOUT:
            if not self.settable:
                raise _error(errno.EOPNOTSUPP)
            self.timeout = max(struct.unpack("i", arg)[0], self.minimum)
            return struct.pack("i", self.timeout)
        if request == WDIOC_GETTIMEOUT:
            if not self.gettable or self.timeout is None:
                raise _error(errno.EOPNOTSUPP)
            return struct.pack("i", self.timeout)
        raise _error(errno.ENOTTY)


class DeviceGone:
    """notify.py's `os`, except that the device's writes and opens fail while `flag` exists."""

    def __init__(self, flag: str):
        self.flag = flag

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def _check(self) -> None:
        if os.path.exists(self.flag):
            raise _error(errno.ENODEV)

    def write(self, fd: int, data: bytes) -> int:
        self._check()
        return os.write(fd, data)

    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        self._check()
        return os.open(path, flags, mode)


def main() -> int:
    notify.fcntl = FakeWatchdogDriver.described(os.environ.get("FAKE_WATCHDOG", "ok"))  # type: ignore[assignment]
    gone = os.environ.get("FAKE_WATCHDOG_GONE")
    if gone:
        notify.os = DeviceGone(gone)  # type: ignore[assignment]
    from failoverd.main import main as failoverd_main

    return failoverd_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
