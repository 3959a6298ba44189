"""Loggers for modules that `fence-self` runs, without importing structlog there.

`failoverd fence-self` is a short process that the peer's ssh starts for every
fence, and for every fence readiness probe (`--dry-run`) every check_interval.
Importing structlog costs it ~22 ms of its ~80 ms (structlog pulls in asyncio),
on the fencing path of a failover and on every probe. So the modules it needs
(fence_self, marker, resources) log through this: in the daemon each call goes
to structlog as usual (configured by failoverd.observe.log, captured by
structlog.testing); in fence-self, after use_plain_json(), lines are written as
JSON directly, in the same shape structlog's JSONRenderer gives them.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class _Plain:
    def __init__(self, level: str, node: str, cluster: str, stream: TextIO):
        self.min = _LEVELS[level]
        self.node, self.cluster, self.stream = node, cluster, stream


_plain: _Plain | None = None


def use_plain_json(level: str, node: str, cluster: str, stream: TextIO | None = None) -> None:
    """From now on write this process's lines as JSON without structlog (fence-self)."""
    global _plain
    _plain = _Plain(level, node, cluster, stream if stream is not None else sys.stderr)


class DeferredLogger:
    """`log.info("event", key=value)` like a structlog logger."""

    def __init__(self, name: str):
        self.name = name

    def _emit(self, level: str, event: str, kw: dict[str, Any]) -> None:
        plain = _plain
        if plain is None:
            import structlog

            getattr(structlog.get_logger(self.name), level)(event, **kw)
            return
        if _LEVELS[level] < plain.min:
            return
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        line = {**kw, "event": event, "level": level, "timestamp": stamp}
        line |= {"node": plain.node, "cluster": plain.cluster}
        # One write per line: stops run on several threads (resources/order.py), and
        # print() writes the newline separately, so two lines could interleave.
        plain.stream.write(json.dumps(line, default=str) + "\n")
        plain.stream.flush()

    def debug(self, event: str, **kw: Any) -> None:
        self._emit("debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit("info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit("warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit("error", event, kw)

    def critical(self, event: str, **kw: Any) -> None:
        self._emit("critical", event, kw)


def get_logger(name: str) -> DeferredLogger:
    return DeferredLogger(name)
