"""`python -m chaos.bench`'s options: which cases `--mail` runs, its usage errors, and
keepalived's scripts on the real mail node."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from chaos.bench import suite


def selected(*argv: str) -> list[str] | str:
    return suite._selected(suite._args(list(argv)))


def test_mail_postfix_runs_the_failovers_and_keepalived_on_the_real_node() -> None:
    assert selected("--mail", "postfix") == [
        "crash",
        "power-off",
        "isolate",
        "switchover",
        "switchover-any",
        "ka-crash",
        "ka-switchover",
    ]


def test_mail_toy_is_the_default_and_keeps_todays_cases() -> None:
    assert suite._args([]).mail == "toy"
    chosen = selected()
    assert chosen == selected("--mail", "toy")
    assert "ka-switchover" not in chosen
    assert {"ka-kill-daemon", "cut-zookeeper", "footprint", "scale"} <= set(chosen)


def test_only_narrows_the_real_node_cases() -> None:
    assert selected("--mail", "postfix", "--only", "isolate,crash") == ["crash", "isolate"]


def test_keepalived_cases_that_would_mount_the_store_twice_are_refused_on_the_real_node(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert suite.main(["--mail", "postfix", "--only", "ka-cut-peer-link"]) == 2
    assert "not with --mail postfix: ka-cut-peer-link" in capsys.readouterr().err


def test_an_unknown_mail_node_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        suite._args(["--mail", "exim"])
    assert e.value.code == 2
    assert "invalid choice: 'exim'" in capsys.readouterr().err


def test_the_repeat_count_applies_to_the_real_node_cases() -> None:
    args = suite._args(["--mail", "postfix", "--repeat", "3"])
    bench = suite.Bench.__new__(suite.Bench)
    bench.args, bench.repeat = args, args.repeat
    specs = {c.key: c for c in suite.LAB_CASES}
    assert bench.reps(specs["switchover"]) == 3 and bench.reps(specs["ka-crash"]) == 3


def test_keepalived_on_the_real_node_mounts_then_starts_and_stops_then_unmounts(
    tmp_path: Path,
) -> None:
    from chaos.bench.keepalived import KeepalivedNode

    (tmp_path / "lab.json").write_text(json.dumps({"prefix": "fo1"}))
    (tmp_path / "mailstore.json").write_text(json.dumps({"mail1": "/dev/loop7"}))
    lab = SimpleNamespace(run_dir=tmp_path)
    node = KeepalivedNode(lab, "mail1", machine=object())  # type: ignore[arg-type]
    node.prepare()
    script = (tmp_path / "mail1" / "notify.sh").read_text()
    master, rest = script.split("\nfi\n")
    assert "umask 022" in script  # keepalived's own umask 077 locks Postfix out of its queue
    steps = [
        "mount -t ext4 /dev/loop7 /run/failoverd-chaos/mail/fo1/store",
        "start postfix",
        "start dovecot",
    ]
    assert [master.index(s) for s in steps] == sorted(master.index(s) for s in steps)
    steps = ["stop dovecot", "stop postfix", "umount /run/failoverd-chaos/mail/fo1/store"]
    assert [rest.index(s) for s in steps] == sorted(rest.index(s) for s in steps)
