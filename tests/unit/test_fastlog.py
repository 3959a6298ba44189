"""failoverd.observe.fastlog: structlog in the daemon, plain JSON lines in fence-self."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from failoverd.observe import fastlog


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    fastlog._plain = None
    yield
    fastlog._plain = None  # later tests capture structlog events of these modules


def test_without_plain_json_events_go_through_structlog() -> None:
    with capture_logs() as logs:
        fastlog.get_logger("failoverd.fencing.marker").warning("marker_written", epoch=3)
    assert logs == [{"event": "marker_written", "epoch": 3, "log_level": "warning"}]


def test_plain_json_writes_one_line_per_event_filtered_by_level() -> None:
    out = io.StringIO()
    fastlog.use_plain_json("info", "mail2", "east", out)
    log = fastlog.get_logger("failoverd.fencing.fence_self")
    log.debug("noise", x=1)
    log.critical("fence_self_failed", epoch=7, reason="lock held")
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert event.pop("timestamp").endswith("Z")
    assert event == {
        "event": "fence_self_failed",
        "level": "critical",
        "epoch": 7,
        "reason": "lock held",
        "node": "mail2",
        "cluster": "east",
    }
