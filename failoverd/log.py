"""Logging (DESIGN.md §7): one event, one line, with who wrote it.

structlog renders JSON lines (`log.format: json`) or human-readable lines
(`console`); kazoo's and paramiko's stdlib logging goes to the same stream in
the same format, so a connection loss and the decision it caused sit next to
each other. Every line carries `node` and `cluster`.

configure_logging() may be called again (SIGHUP reload): structlog's whole
chain is replaced and our stdlib handler is swapped, never added twice.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor

from failoverd.config import LogConfig

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# Marks the stdlib handler this module installed, so a reload replaces it.
HANDLER_NAME = "failoverd"


class _Identity:
    """Adds node and cluster to every event.

    A processor rather than structlog's context variables alone: a thread
    started with threading.Thread (the lease keeper, the worker pool, kazoo's
    threads) begins with an empty context, and a line from those threads
    without `node` is exactly the line nobody can place at 3 a.m. The writer's
    identity wins over an event's own `node`/`cluster` keys: events naming
    another node use `target` or `peer`."""

    def __init__(self, node: str, cluster: str):
        self.node = node
        self.cluster = cluster

    def __call__(self, _logger: Any, _name: str, event_dict: EventDict) -> EventDict:
        event_dict["node"] = self.node
        event_dict["cluster"] = self.cluster
        return event_dict


def _renderer(cfg: LogConfig, stream: TextIO) -> list[Processor]:
    if cfg.format == "json":
        return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    isatty = getattr(stream, "isatty", None)
    colors = bool(isatty and isatty())
    return [structlog.dev.ConsoleRenderer(colors=colors)]


def configure_logging(
    cfg: LogConfig, node: str, cluster: str, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to `stream` (default: sys.stderr, i.e.
    the journal under systemd), filtered at cfg.level."""
    stream = stream if stream is not None else sys.stderr
    level = LEVELS[cfg.level]
    shared: list[Processor] = [
        # Context bound per operation with structlog.contextvars.bind_contextvars.
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _Identity(node, cluster),
    ]
    rendering = _renderer(cfg, stream)
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *rendering],
        # Events below the level are dropped before any processor runs.
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        # Module-level loggers (`log = structlog.get_logger(...)`) must pick up a
        # reconfiguration after SIGHUP; caching would pin the first one.
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Only failoverd's own events go down to debug: kazoo and paramiko at debug
    # log every ping and packet, which would drown the decisions.
    root.setLevel(max(level, logging.INFO))
