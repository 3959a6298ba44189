"""Logging: JSON lines carrying node and cluster from every thread, level filtering, reload."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from collections.abc import Iterator

import pytest
import structlog

from failoverd.config import LogConfig
from failoverd.observe.log import HANDLER_NAME, configure_logging, is_journal


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_level_timestamp_node_and_cluster():
    out = io.StringIO()
    configure_logging(LogConfig(format="json", level="info"), "mail1", "mail-east", stream=out)
    structlog.get_logger("failoverd.node.daemon").info("promoted", epoch=7, took_ms=120)
    (event,) = lines(out)
    assert event["event"] == "promoted"
    assert event["epoch"] == 7
    assert event["level"] == "info"
    assert event["node"] == "mail1"
    assert event["cluster"] == "mail-east"
    assert event["timestamp"].endswith("Z")


def test_events_from_other_threads_carry_node_and_cluster():
    out = io.StringIO()
    configure_logging(LogConfig(), "mail1", "mail-east", stream=out)
    t = threading.Thread(target=lambda: structlog.get_logger().warning("lease_not_renewed"))
    t.start()
    t.join()
    (event,) = lines(out)
    assert (event["node"], event["cluster"]) == ("mail1", "mail-east")


def test_events_below_the_level_are_dropped():
    out = io.StringIO()
    configure_logging(LogConfig(level="warning"), "mail1", "mail-east", stream=out)
    log = structlog.get_logger()
    log.debug("noise")
    log.info("noise")
    log.warning("fence_slow")
    log.error("fence_failed")
    assert [e["event"] for e in lines(out)] == ["fence_slow", "fence_failed"]


def test_debug_level_shows_debug_events():
    out = io.StringIO()
    configure_logging(LogConfig(level="debug"), "mail1", "mail-east", stream=out)
    structlog.get_logger().debug("decided", act="wait")
    assert [e["event"] for e in lines(out)] == ["decided"]


def test_reconfiguring_does_not_duplicate_lines_and_applies_to_existing_loggers():
    first, second = io.StringIO(), io.StringIO()
    log = structlog.get_logger("failoverd.node.daemon")  # module-level logger, made before reload
    configure_logging(LogConfig(level="info"), "mail1", "mail-east", stream=first)
    log.info("started")
    configure_logging(LogConfig(level="info"), "mail1", "mail-east", stream=second)
    configure_logging(LogConfig(level="info"), "mail1", "mail-east", stream=second)
    log.info("reloaded")
    logging.getLogger("kazoo.client").warning("Connection dropped")
    assert [e["event"] for e in lines(first)] == ["started"]
    assert [e["event"] for e in lines(second)] == ["reloaded", "Connection dropped"]
    names = [h.get_name() for h in logging.getLogger().handlers]
    assert names.count(HANDLER_NAME) == 1


def test_stdlib_records_from_libraries_become_json_lines():
    out = io.StringIO()
    configure_logging(LogConfig(), "mail1", "mail-east", stream=out)
    logging.getLogger("kazoo.client").warning("Connection dropped: %s", "socket error")
    logging.getLogger("kazoo.client").debug("Sending request(xid=1)")  # below INFO: dropped
    (event,) = lines(out)
    assert event["event"] == "Connection dropped: socket error"
    assert event["logger"] == "kazoo.client"
    assert event["level"] == "warning"
    assert event["node"] == "mail1"


def test_exceptions_are_rendered_into_the_json_line():
    out = io.StringIO()
    configure_logging(LogConfig(), "mail1", "mail-east", stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger().exception("loop_crashed")
    (event,) = lines(out)
    assert "RuntimeError: boom" in event["exception"]


def test_console_format_is_one_readable_line_per_event():
    out = io.StringIO()
    configure_logging(LogConfig(format="console"), "mail1", "mail-east", stream=out)
    structlog.get_logger().info("demoted", epoch=3)
    (line,) = out.getvalue().splitlines()
    assert "demoted" in line
    assert "epoch=3" in line
    assert "node=mail1" in line
    assert "\x1b[" not in line  # no colours when not writing to a terminal


def test_bound_context_vars_are_merged():
    out = io.StringIO()
    configure_logging(LogConfig(), "mail1", "mail-east", stream=out)
    with structlog.contextvars.bound_contextvars(epoch=9):
        structlog.get_logger().info("resource_started", resource="vip")
    (event,) = lines(out)
    assert event["epoch"] == 9


# -- journald priorities (sd-daemon(3)): only when stderr *is* the journal ----------


def journal_file(tmp_path, monkeypatch: pytest.MonkeyPatch, matching: bool = True):
    """A real file standing in for the journal's stream: systemd's JOURNAL_STREAM
    names it by device:inode."""
    stream = open(tmp_path / "journal", "w+")  # noqa: SIM115 - closed by the test
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + (0 if matching else 1)}")
    return stream


def written(stream) -> list[str]:
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


def test_in_the_journal_each_line_starts_with_its_syslog_priority(tmp_path, monkeypatch):
    stream = journal_file(tmp_path, monkeypatch)
    configure_logging(LogConfig(level="debug"), "mail1", "mail-east", stream=stream)
    log = structlog.get_logger()
    log.critical("session_timeout_shortened")
    log.error("fence_failed", target="mail2")
    log.warning("fence_slow")
    log.info("promoted", epoch=7)
    log.debug("decided")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("stop_failed")
    logging.getLogger("kazoo.client").warning("Connection dropped")
    out = written(stream)
    prefixes = [line[:3] for line in out]
    assert prefixes == ["<2>", "<3>", "<4>", "<6>", "<7>", "<3>", "<4>"]
    # After the prefix the line is still the JSON event journalctl -o cat shows.
    events = [json.loads(line[3:])["event"] for line in out]
    assert events[1] == "fence_failed"
    assert events[5] == "stop_failed"
    assert events[6] == "Connection dropped"


def test_console_format_in_the_journal_prefixes_every_line_of_a_traceback(tmp_path, monkeypatch):
    stream = journal_file(tmp_path, monkeypatch)
    configure_logging(LogConfig(format="console"), "mail1", "mail-east", stream=stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger().exception("stop_failed")
    out = [line for line in written(stream) if line]
    assert len(out) > 1  # the traceback spans lines: journald reads each as an entry
    assert all(line.startswith("<3>") for line in out)


def test_a_journal_stream_of_another_descriptor_leaves_lines_unchanged(tmp_path, monkeypatch):
    # systemd sets JOURNAL_STREAM for the stream it connected; if stderr was
    # redirected since (to a file here), a priority prefix would be garbage in it.
    stream = journal_file(tmp_path, monkeypatch, matching=False)
    configure_logging(LogConfig(), "mail1", "mail-east", stream=stream)
    structlog.get_logger().error("fence_failed")
    (line,) = written(stream)
    assert json.loads(line)["event"] == "fence_failed"


def test_without_journal_stream_lines_are_unchanged(tmp_path, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = open(tmp_path / "stderr", "w+")  # noqa: SIM115
    configure_logging(LogConfig(), "mail1", "mail-east", stream=stream)
    structlog.get_logger().error("fence_failed")
    (line,) = written(stream)
    assert json.loads(line)["event"] == "fence_failed"


def test_malformed_journal_stream_is_not_the_journal(tmp_path, monkeypatch):
    stream = open(tmp_path / "stderr", "w+")  # noqa: SIM115
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    assert not is_journal(stream)
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    assert not is_journal(io.StringIO())
