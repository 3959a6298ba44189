"""The registry of labs (chaos/lab/registry.py): one claim per prefix, entries cleanup can read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chaos.lab import registry


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(registry, "REGISTRY", tmp_path / "registry")
    return tmp_path / "registry"


def test_a_prefix_is_claimed_once_and_names_its_runner(root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert registry.claim("fo1", run, ["fo1-mail1", "fo1-br"])
    assert not registry.claim("fo1", run, ["fo1-mail1"])  # a concurrent lab must not share it
    info = json.loads((root / "fo1.json").read_text())
    assert info["namespaces"] == ["fo1-mail1", "fo1-br"]
    assert info["runner_pid"] == os.getpid()
    assert registry.runner_alive(info["runner_pid"], info["runner_start"]) is False  # ourselves
    assert json.loads((run / "lab.json").read_text()) == info


def test_added_fields_reach_the_entry_and_lab_json_and_release_removes_the_entry(
    root: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    registry.claim("fo2", run, [])
    registry.add_fields("fo2", run, mail_image=str(run / "mailstore.img"))
    for path in (root / "fo2.json", run / "lab.json"):
        assert json.loads(path.read_text())["mail_image"] == str(run / "mailstore.img")
    assert not list(root.glob(".*.tmp"))  # atomic writes leave no temporary file behind
    registry.release("fo2")
    registry.release("fo2")  # idempotent
    assert not (root / "fo2.json").exists()


def test_a_dead_or_reused_pid_is_not_the_runner() -> None:
    assert registry.runner_alive(0, None) is False
    parent = os.getppid()
    start = registry.process_start(parent)
    assert start is not None
    assert registry.runner_alive(parent, start) is True
    assert registry.runner_alive(parent, start + 1) is False  # same pid, another process
