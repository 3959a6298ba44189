"""Triggers: specs parse or fail clearly; a log tail fires on its node's own lines only."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pytest

from chaos.faults import triggers


def line(**rec: object) -> str:
    return json.dumps(rec) + "\n"


def test_specs_parse_and_typos_name_the_known_triggers() -> None:
    assert str(triggers.parse("promoting")) == "promoting@standby"
    assert str(triggers.parse("demoting@active")) == "demoting@active"
    assert str(triggers.parse("delay:1-4")) == "delay:1-4"
    assert triggers.parse("now").kind == "now"
    with pytest.raises(ValueError, match="known: now, delay:LO-HI, fence_planned"):
        triggers.parse("promotin")
    with pytest.raises(ValueError, match="LOW <= HIGH"):
        triggers.parse("delay:4-1")


def test_an_armed_trigger_ignores_older_lines_and_fires_on_the_role_change(tmp_path: Path) -> None:
    log = tmp_path / "mail2" / "failoverd.log"
    log.parent.mkdir()
    log.write_text(line(event="role_changed", role="promoting"))  # before arming: ignored
    armed = triggers.arm(
        "promoting@standby", tmp_path, {"active": "mail1", "standby": "mail2"}, random.Random(1)
    )
    assert armed.wait(0.05) is None
    with open(log, "a") as f:
        f.write(line(event="role_changed", role="fencing"))
        f.write('{"event": "role_changed", "role": "prom')  # a line being written
        f.flush()
        assert armed.wait(0.05) is None
        f.write('oting", "epoch": 7}\n')
    hit = armed.wait(1.0)
    assert hit is not None and hit["epoch"] == 7


def test_a_trigger_waits_for_a_line_written_while_it_waits(tmp_path: Path) -> None:
    log = tmp_path / "mail1" / "failoverd.log"
    log.parent.mkdir()
    armed = triggers.arm("fence_planned@mail1", tmp_path, {}, random.Random(1))
    writer = threading.Timer(0.2, lambda: log.write_text(line(event="fence_planned")))
    writer.start()
    try:
        assert armed.wait(10) == {"event": "fence_planned"}
    finally:
        writer.join()


def test_a_delay_is_drawn_from_the_seed() -> None:
    a = triggers.arm("delay:1-4", Path("."), {}, random.Random(5))
    b = triggers.arm("delay:1-4", Path("."), {}, random.Random(5))
    assert 1 <= a.delay <= 4 and a.delay == b.delay


def test_resource_starting_fires_on_the_daemon_line_not_on_promoting(tmp_path: Path) -> None:
    log = tmp_path / "mail2" / "failoverd.log"
    log.parent.mkdir()
    log.write_text("")
    roles = {"active": "mail1", "standby": "mail2"}
    for spec in ("resource_starting@standby", "before_resource_start@standby"):
        armed = triggers.arm(spec, tmp_path, roles, random.Random(1))
        with open(log, "a") as f:
            f.write(line(event="role_changed", role="promoting", epoch=3))
        assert armed.wait(0.05) is None
        with open(log, "a") as f:
            f.write(line(event="resource_starting", resource="vip 198.51.100.25", epoch=3))
        hit = armed.wait(1.0)
        assert hit is not None and hit["resource"] == "vip 198.51.100.25"
