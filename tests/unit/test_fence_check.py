"""`failoverctl fence-check NODE` says what it verified: each method is OK (its check
ran and passed), UNVERIFIED (nothing could be checked without fencing) or FAIL, and
the exit code is 0 only when some method is OK. Configs are YAML files, as an
operator writes them; no method here needs ZooKeeper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from failoverd.cli.failoverctl import main
from failoverd.fencing.base import FAIL, OK, UNVERIFIED
from failoverd.fencing.lease_wait import PublishedWatchdogs
from failoverd.zk.znodes import MemberStatus, WatchdogStatus

CONFIG = """\
cluster: east
node: {{name: mail1, address: 127.0.0.1}}
peers: {{mail2: {{address: 127.0.0.2}}}}
zookeeper: {{hosts: "127.0.0.1:1"}}
fencing:
{fencing}
"""


@pytest.fixture(autouse=True)
def structlog_restored() -> object:
    """failoverctl points structlog at the captured stderr; later tests must not log there."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def config_file(tmp_path: Path, fencing: str) -> str:
    path = tmp_path / "failoverd.yaml"
    path.write_text(CONFIG.format(fencing=fencing))
    return str(path)


def fence_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fencing: str, *extra: str
) -> tuple[int, str, str]:
    rc = main(["-c", config_file(tmp_path, fencing), "fence-check", "mail2", *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


POWER_CHECK_FAILS = "  - {type: command, argv: ['true', '{node}'], check_argv: ['false', '{node}']}"
POWER_CHECK_PASSES = "  - {type: command, argv: ['true', '{node}'], check_argv: ['true', '{node}']}"
POWER_UNCHECKED = "  - {type: command, argv: ['true', '{node}']}"


def test_a_power_check_that_fails_is_fail_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = fence_check(tmp_path, capsys, POWER_CHECK_FAILS)
    assert rc == 1, out + err
    assert out.startswith("FAIL"), out
    assert "check false exited 1" in out
    assert "no fencing method against mail2 is verified" in err


def test_a_power_check_that_passes_is_ok_and_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = fence_check(tmp_path, capsys, POWER_CHECK_PASSES)
    assert rc == 0, out + err
    assert out.startswith("OK"), out
    assert "check true exited 0" in out


def test_a_command_without_check_argv_is_unverified_in_words_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = fence_check(tmp_path, capsys, POWER_UNCHECKED)
    assert rc == 1, out + err
    assert out.startswith("UNVERIFIED"), out
    assert "no check_argv is configured" in out and "would run: true mail2" in out


def test_one_verified_method_in_the_chain_is_enough_for_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = fence_check(
        tmp_path, capsys, "\n".join([POWER_CHECK_FAILS, POWER_UNCHECKED, POWER_CHECK_PASSES])
    )
    assert rc == 0, out
    assert [line.split()[0] for line in out.splitlines()] == [FAIL, UNVERIFIED, OK]


def test_only_unverified_and_failed_methods_are_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = fence_check(tmp_path, capsys, "\n".join([POWER_CHECK_FAILS, POWER_UNCHECKED]))
    assert rc == 1, out
    assert [line.split()[0] for line in out.splitlines()] == [FAIL, UNVERIFIED]


def test_json_lists_method_result_detail_and_elapsed_ms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = fence_check(
        tmp_path, capsys, "\n".join([POWER_CHECK_FAILS, POWER_CHECK_PASSES]), "--json"
    )
    assert rc == 0
    rows = json.loads(out)
    assert [set(r) for r in rows] == [{"method", "result", "detail", "elapsed_ms"}] * 2
    assert [(r["method"], r["result"]) for r in rows] == [("command", FAIL), ("command-2", OK)]
    assert isinstance(rows[0]["elapsed_ms"], int) and "exited 1" in rows[0]["detail"]


def test_a_peer_that_is_not_configured_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["-c", config_file(tmp_path, POWER_CHECK_PASSES), "fence-check", "mail9"])
    assert rc == 2
    assert "Traceback" not in capsys.readouterr().err


# --- lease-wait: only what the target published can verify it --------------------------


def member(watchdog: WatchdogStatus | None) -> MemberStatus:
    return MemberStatus(
        "mail2", "active", True, 3, "1", "127.0.0.2", False, "", "now", watchdog=watchdog
    )


@pytest.mark.parametrize(
    ("seen", "result"),
    [
        ({"mail2": member(WatchdogStatus(armed=True, timeout=10.0))}, OK),
        ({"mail2": member(WatchdogStatus(armed=False, timeout=None, why="no device"))}, FAIL),
        ({"mail2": member(WatchdogStatus(armed=True, timeout=60.0))}, FAIL),
        ({"mail2": member(None)}, FAIL),  # an older failoverd: nothing resets it
        ({}, UNVERIFIED),  # not seen since this process started
        ({"mail2": None}, UNVERIFIED),  # its status is unreadable
    ],
)
def test_lease_wait_readiness_is_what_the_target_published(
    seen: dict[str, MemberStatus | None], result: str
) -> None:
    published = PublishedWatchdogs()
    published.saw(seen)
    got, why = published.readiness("mail2", assumed=10.0)
    assert got == result, why


# --- failoverctl status judges what the standby published toward the active -------------


def status(**standby: object) -> dict[str, object]:
    rows = [
        {"node": "mail1", "role": "active", "healthy": True, "eligible": False, "why": "x"},
        {"node": "mail2", "role": "standby", "healthy": True, "eligible": True, "why": ""},
    ]
    rows[1].update(standby)
    return {"lease_holder": "mail1", "maintenance": False, "members": rows}


@pytest.mark.parametrize(
    "paths",
    [
        {"mail1": {"ssh": "FAIL", "command": "UNVERIFIED"}},
        {"mail1": {"command": "UNVERIFIED"}},
        {"mail3": {"ssh": "OK"}},  # a path to someone else fences nothing here
        {},  # nothing published yet
    ],
)
def test_status_degrades_when_the_standby_cannot_verifiably_fence_the_active(
    paths: dict[str, dict[str, str]],
) -> None:
    from failoverd.cli.status import verdict

    ok, sentence = verdict(status(fence_ready={"ssh": False}, fence_paths=paths))
    assert not ok, sentence
    assert sentence.startswith("no standby can verifiably fence the active mail1"), sentence
    assert "mail2: " in sentence


def test_status_is_healthy_when_the_standby_has_one_verified_method_toward_the_active() -> None:
    from failoverd.cli.status import verdict

    paths = {"mail1": {"ssh": "FAIL", "command": "OK"}}
    ok, sentence = verdict(status(fence_paths=paths))
    assert ok, sentence
    assert sentence == "one healthy active (mail1), eligible standby: mail2"


def test_status_names_an_active_that_cannot_verifiably_fence_its_standby() -> None:
    # After a failover the roles swap; today's failover does not depend on it: exit 0.
    from failoverd.cli.status import verdict

    st = status(fence_paths={"mail1": {"ssh": "OK"}})
    st["members"][0]["fence_paths"] = {"mail2": {"ssh": "FAIL"}}  # type: ignore[index]
    ok, sentence = verdict(st)
    assert ok, sentence
    assert sentence.endswith("; the active cannot verifiably fence mail2: ssh FAIL"), sentence
