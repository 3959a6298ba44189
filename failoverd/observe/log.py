"""Logging: one event, one line, with who wrote it.

structlog renders JSON lines (`log.format: json`) or human-readable lines
(`console`); kazoo's and paramiko's stdlib logging goes to the same stream in
the same format, so a connection loss and the decision it caused sit next to
each other. Every line carries `node` and `cluster`.

configure_logging() may be called again (SIGHUP reload): structlog's whole
chain is replaced and our stdlib handler is swapped, never added twice.

Under systemd, stderr is the journal: each line then starts with its syslog
priority (`<3>` for an error, sd-daemon(3)), so `journalctl -p err -u failoverd`
shows fence_failed and stop_failed without grepping JSON. Anywhere else the
lines are unchanged.
"""

from __future__ import annotations

import logging
import os
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

# syslog priorities (sd-daemon(3) SD_CRIT ... SD_DEBUG) by structlog/stdlib level
# name. Anything unknown is logged as info rather than dropped or promoted.
PRIORITIES = {
    "critical": 2,
    "fatal": 2,
    "error": 3,
    "exception": 3,
    "warning": 4,
    "warn": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}
INFO_PRIORITY = 6


def is_journal(stream: TextIO) -> bool:
    """True when `stream` is the journal: systemd sets JOURNAL_STREAM to the
    `device:inode` of the stream it connected, and a process must compare it with
    its own descriptor, because stderr may have been redirected since
    (systemd.exec(5), "$JOURNAL_STREAM")."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        # Unset or malformed, or a stream without a descriptor (StringIO).
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class _JournalPriority:
    """Wraps the renderer: prefixes every rendered line with `<N>`, the event's
    syslog priority. Every line, because journald reads each line of a stream as
    its own entry (a console-format traceback spans several)."""

    def __init__(self, renderer: Processor):
        self.renderer = renderer

    def __call__(self, logger: Any, name: str, event_dict: EventDict) -> Any:
        level = str(event_dict.get("level", name)).lower()
        prefix = f"<{PRIORITIES.get(level, INFO_PRIORITY)}>"
        rendered = self.renderer(logger, name, event_dict)
        if not isinstance(rendered, str):
            return rendered
        return "\n".join(prefix + line for line in rendered.split("\n"))


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
    render: Processor
    if cfg.format == "json":
        chain: list[Processor] = [structlog.processors.format_exc_info]
        render = structlog.processors.JSONRenderer()
    else:
        isatty = getattr(stream, "isatty", None)
        chain, render = [], structlog.dev.ConsoleRenderer(colors=bool(isatty and isatty()))
    return [*chain, _JournalPriority(render) if is_journal(stream) else render]


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
