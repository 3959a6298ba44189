"""The lab's Postfix start (chaos/services/postfix.py): the master alone on a queue
set up before, `postfix check` first on a fresh one, and the records the judge
reads (service_up before anything starts, service_down when the start fails)
exactly as before. Processes are stood in for; nothing is started."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chaos.records import read_records
from chaos.services import postfix

POSTFIX_FILES = """\
$queue_directory:d:root:-:755:uc
$queue_directory/active:d:$mail_owner:-:700:ucr
$queue_directory/maildrop:d:$mail_owner:$setgid_group:730:uc
$queue_directory/pid:d:root:-:755:uc
$queue_directory/public:d:$mail_owner:$setgid_group:710:uc
$command_directory/postqueue:f:root:$setgid_group:2755:u
"""


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    lab = tmp_path / "lab"
    (lab / "mail1").mkdir(parents=True)
    (lab / "lab.json").write_text(json.dumps({"prefix": "t"}))
    p = postfix.NodePaths(lab, "mail1")
    p.store = tmp_path / "store"
    p.postfix.mkdir(parents=True)
    files = tmp_path / "postfix-files"
    files.write_text(POSTFIX_FILES)
    monkeypatch.setattr(postfix, "POSTFIX_FILES", files)
    world = SimpleNamespace(ran=[], events=p.events, master_ok=True, running=False)

    def run(argv: list[str], **kw: Any) -> Any:
        world.ran.append(argv)
        if argv[0] == postfix.POSTFIX_BIN + "master":
            world.running = world.master_ok
            return subprocess.CompletedProcess(argv, 0 if world.master_ok else 1)
        if argv[:2] == ["script", "-qec"] and " check" in argv[2]:
            for name in postfix.queue_dirs():  # what post-install create-missing does
                (p.queue / name).mkdir(parents=True, exist_ok=True)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(postfix.subprocess, "run", run)
    monkeypatch.setattr(postfix.os.path, "ismount", lambda path: path == p.store)
    monkeypatch.setattr(postfix.os, "chown", lambda *a: None)
    monkeypatch.setattr(postfix.pwd, "getpwnam", lambda name: SimpleNamespace(pw_uid=101))
    world.main_cf = "# main.cf\n"
    monkeypatch.setattr(postfix, "main_cf", lambda p: world.main_cf)
    monkeypatch.setattr(postfix, "_listening", lambda port: world.running)
    monkeypatch.setattr(postfix, "_postfix_master", lambda: 4242 if world.running else None)
    monkeypatch.setattr(postfix, "node_processes", lambda prefixes: [4242] if world.running else [])
    world.p = p
    return world


def commands(world: Any) -> list[str]:
    return [" ".join(a) for a in world.ran]


def test_queue_dirs_are_the_installed_postfix_lists_directories(node: Any) -> None:
    assert postfix.queue_dirs() == ["active", "maildrop", "pid", "public"]


def test_a_fresh_queue_is_checked_once_then_the_master_starts_alone(node: Any) -> None:
    p = node.p
    assert not postfix.queue_ready(p.queue)
    assert postfix.start_postfix(p, 8.0) == 0
    check = f"script -qec postfix -c {p.postfix} check /dev/null"
    master = f"{postfix.POSTFIX_BIN}master -c {p.postfix} -w"
    assert commands(node) == [check, master]
    assert postfix.queue_ready(p.queue)
    node.running, node.ran = False, []
    assert postfix.start_postfix(p, 8.0) == 0  # the next start, on any node
    assert commands(node) == [master]
    assert not [c for c in commands(node) if "postfix start" in c or " check" in c]


def test_the_judges_records_are_written_as_before(node: Any) -> None:
    p = node.p
    assert postfix.start_postfix(p, 8.0) == 0
    [up] = read_records(p.events)
    assert up["event"] == "service_up" and up["by"] == "postfix"
    assert up["queue"] == str(p.queue) and up["node"] == "mail1"
    [master] = read_records(p.processes)
    assert master["event"] == "postfix_master" and master["pid"] == 4242


def test_a_master_that_does_not_start_closes_the_interval_and_says_why(node: Any) -> None:
    p = node.p
    node.master_ok = False
    assert postfix.start_postfix(p, 8.0) == 1
    assert [r["event"] for r in read_records(p.events)] == ["service_up", "service_down"]
    assert read_records(p.events)[1]["by"] == "postfix-not-running"
    # `postfix check` after the failure: the master says why only to its log
    assert commands(node)[-1] == f"script -qec postfix -c {p.postfix} check /dev/null"


def test_main_cf_is_rewritten_only_when_a_flag_changes_it(node: Any) -> None:
    """Postfix waits for a main.cf changed within the last second or two to
    "cool down": a start that rewrites it waits 1 to 2.4 s for nothing."""
    p = node.p
    main_cf = p.postfix / "main.cf"
    main_cf.write_text(node.main_cf)
    os.utime(main_cf, (1_000_000, 1_000_000))  # written at prepare time, long ago
    assert postfix.start_postfix(p, 8.0) == 0
    assert main_cf.stat().st_mtime == 1_000_000
    node.running = False
    node.main_cf = "# main.cf\nvirtual_destination_rate_delay = 1s\n"  # a control's flag
    assert postfix.start_postfix(p, 8.0) == 0
    assert main_cf.read_text() == node.main_cf
