"""hooks: config validation and the runner's never-blocking queue (no processes here;
tests/integration/test_hooks.py runs real hooks)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from failoverd.config import HookConfig
from failoverd.observe import hooks
from failoverd.observe.hooks import HookEvent, HookRunner
from tests.unit.test_config import load, minimal, problems


def test_hooks_load_with_defaults(tmp_path: Path) -> None:
    cfg = minimal()
    cfg["hooks"] = [
        {"events": ["promoted", "demoted"], "argv": ["/usr/local/bin/page"], "timeout": "3s"},
        {"events": ["fence_path_lost"], "argv": ["logger", "x"]},
    ]
    c = load(tmp_path, cfg)
    assert c.hooks == (
        HookConfig(("promoted", "demoted"), ("/usr/local/bin/page",), 3.0),
        HookConfig(("fence_path_lost",), ("logger", "x"), 10.0),
    )
    assert load(tmp_path, minimal()).hooks == ()


def test_bad_hooks_name_the_key_path(tmp_path: Path) -> None:
    cfg = minimal()
    cfg["hooks"] = [
        {"events": ["promoted", "promotd"], "argv": ["/bin/true"]},
        {"events": [], "argv": []},
        {"events": ["demoted"], "argv": "page-me", "timeout": "soon", "when": "x"},
        "not a mapping",
    ]
    got = "\n".join(problems(tmp_path, cfg))
    assert "hooks[0].events[1]: unknown event 'promotd'; did you mean 'promoted'?" in got
    assert "hooks[1].events: expected a non-empty list of events" in got
    assert "hooks[1].argv: " in got and "hooks[2].argv: " in got
    assert "hooks[2].timeout: " in got
    assert "hooks[2].when: unknown key" in got
    assert "hooks[3]: expected a mapping" in got
    cfg["hooks"] = {"events": ["promoted"]}
    assert any("hooks: expected a list" in p for p in problems(tmp_path, cfg))


BASE_YAML = """\
cluster: mail-east
node: {name: mail1, address: 10.0.0.11}
peers: {mail2: {address: 10.0.0.12}}
zookeeper: {hosts: "zk1:2181,zk2:2181,zk3:2181"}
fencing: [{type: command, argv: [/usr/local/sbin/pdu-off, "{node}"]}]
"""


def test_hooks_subscribe_with_events_in_yaml(tmp_path: Path) -> None:
    text = BASE_YAML + (
        "hooks:\n"
        "  - events: [promoted, fence_failed]\n"
        "    argv: [/usr/local/lib/failoverd/page-webhook, /etc/failoverd/pager.url]\n"
        "  - {events: [demoted], argv: [logger, x], timeout: 5s}\n"
    )
    assert load(tmp_path, text).hooks == (
        HookConfig(("promoted", "fence_failed"), ("/usr/local/lib/failoverd/page-webhook",
                   "/etc/failoverd/pager.url"), 10.0),
        HookConfig(("demoted",), ("logger", "x"), 5.0),
    )  # fmt: skip


def test_a_quoted_on_key_still_works(tmp_path: Path) -> None:
    text = BASE_YAML + "hooks:\n  - {\"on\": [promoted], argv: [logger, x]}\n"
    assert load(tmp_path, text).hooks == (HookConfig(("promoted",), ("logger", "x"), 10.0),)


@pytest.mark.parametrize(
    "hook",
    [
        "  - {on: [promoted], argv: [logger, x]}\n",
        "  - on: [promoted]\n    argv: [logger, x]\n",
    ],
)
def test_a_bare_on_key_says_to_write_events(tmp_path: Path, hook: str) -> None:
    # YAML reads a bare `on` as the boolean true, so the key arrives as True.
    got = problems(tmp_path, BASE_YAML + "hooks:\n" + hook)
    path = tmp_path / "failoverd.yaml"
    assert got == [
        f"{path}: hooks[0]: a bare 'on:' key is read by YAML as true: write 'events:' instead"
    ]


def test_events_and_on_together_are_one_too_many(tmp_path: Path) -> None:
    text = BASE_YAML + "hooks:\n  - {events: [promoted], \"on\": [demoted], argv: [logger]}\n"
    got = "\n".join(problems(tmp_path, text))
    assert "hooks[0]: both 'events' and 'on': write only 'events'" in got


def test_fire_never_blocks_and_drops_when_the_queue_is_full() -> None:
    runner = HookRunner([HookConfig(("promoted",), ("/bin/true",))], "east", "mail1", 2)
    t0 = time.monotonic()
    for _ in range(5):
        runner.fire("promoted", epoch=3)  # worker not started: nothing drains the queue
    runner.fire("demoted")  # no hook subscribes: not even queued
    assert time.monotonic() - t0 < 0.5
    assert runner.pending.qsize() == 2 and runner.dropped == 3


def test_environment_names_the_event_and_the_peer_only_where_it_applies() -> None:
    runner = HookRunner([], "east", "mail1")
    env = runner.env(HookEvent("fenced", 7, "ssh: ok", "mail2"))
    assert (env["FAILOVERD_EVENT"], env["FAILOVERD_NODE"], env["FAILOVERD_CLUSTER"]) == (
        "fenced",
        "mail1",
        "east",
    )
    assert (env["FAILOVERD_EPOCH"], env["FAILOVERD_REASON"], env["FAILOVERD_PEER"]) == (
        "7",
        "ssh: ok",
        "mail2",
    )
    env = runner.env(HookEvent("stop_failed", None, "x", None))
    assert env["FAILOVERD_EPOCH"] == "" and "FAILOVERD_PEER" not in env


def test_module_fire_goes_to_the_installed_runner_and_is_a_no_op_without_one() -> None:
    runner = HookRunner([HookConfig(("fence_path_lost",), ("/bin/true",))], "east", "mail1")
    hooks.install(None)
    hooks.fire("fence_path_lost", peer="mail2", reason="ssh: refused")  # no daemon: nothing
    hooks.install(runner)
    try:
        hooks.fire("fence_path_lost", peer="mail2", reason="ssh: refused")
        assert runner.pending.get_nowait() == HookEvent(
            "fence_path_lost", None, "ssh: refused", "mail2"
        )
    finally:
        hooks.install(None)


def test_check_names_a_hook_program_that_is_missing(tmp_path: Path) -> None:
    """failoverd --check (host_checks) covers hooks: a pager that is not there is
    found before the failover it should have announced."""
    from tests.unit.test_host_checks import findings, machine, program

    gone = str(tmp_path / "bin" / "page-me")
    ok = program(tmp_path, "log-it")
    found = findings(
        tmp_path,
        machine(tmp_path),
        hooks=[{"on": ["promoted"], "argv": [gone]}, {"on": ["demoted"], "argv": [ok]}],
    )
    assert [(f.severity, f.at) for f in found] == [("error", "hooks[0].argv")]
    assert "does not exist" in found[0].message


def test_hooks_cannot_speak_to_systemd_for_the_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    env = HookRunner([], "east", "mail1").env(HookEvent("promoted", 1, "", None))
    assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env
