"""A fence is not a graceful stop. fence-self, and a demotion of a node that has lost
its right to serve (its lease ran out, its session lost the lock, a peer fenced it),
take each resource's fast path (`kill`); a switchover, a failing health check and a
shutdown keep the graceful stop. The fast path ends in the same verified state."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from failoverd.checks.programs import root_argvs
from failoverd.config import (
    CommandResourceConfig,
    ConfigError,
    OcfResourceConfig,
    SystemdResourceConfig,
    load_config,
)
from failoverd.fencing.fence_self import run_fence_self
from failoverd.node.decision import Act, Decision, Role, stop_is_fence
from failoverd.resources.base import ResourceError, stop_all
from failoverd.resources.build import build_resource, build_resources
from failoverd.resources.command import CommandResource
from failoverd.resources.started import StartedRecord, identity
from failoverd.resources.systemd import SystemdResource
from tests.unit.test_transitions_seam import make

ENV = {"FAILOVERD_CLUSTER": "mail-east", "FAILOVERD_NODE": "mail1", "FAILOVERD_EPOCH": "7"}


class Journal:
    """A resource that writes down how it was stopped; `fast_path=False`: one that
    has no kill (an older kind, a test's fake)."""

    def __init__(self, name: str, seen: list[str], fast_path: bool = True):
        self.name, self.key, self.timeout, self.seen = name, "resource", 5.0, seen
        if fast_path:
            self.kill = lambda env: self.seen.append(f"kill {self.name}")

    def start(self, env: Mapping[str, str]) -> None:
        self.seen.append(f"start {self.name}")

    def stop(self, env: Mapping[str, str]) -> None:
        self.seen.append(f"stop {self.name}")

    def is_running(self, env: Mapping[str, str]) -> bool | None:
        return None


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


# -- stop_all ------------------------------------------------------------------------


def test_stop_all_kills_when_the_stop_is_a_fence_and_stops_gracefully_otherwise() -> None:
    seen: list[str] = []
    resources = [Journal("store", seen), Journal("old", seen, fast_path=False)]
    assert stop_all(resources, ENV, True) == []
    # In reverse; a resource without a fast path is stopped as always.
    assert seen == ["stop old", "kill store"]
    seen.clear()
    assert stop_all(resources, ENV) == []
    assert seen == ["stop old", "stop store"]


# -- which demotions are fences (pure) -------------------------------------------------


@pytest.mark.parametrize("code", ["lease_lost", "lock_lost", "fenced"])
def test_a_node_that_lost_its_right_to_serve_stops_as_a_fence(code: str) -> None:
    assert stop_is_fence(code, lease_valid=True)


@pytest.mark.parametrize(
    "code",
    ["switchover", "shutdown", "health", "resource_lost", "watchdog", "start_failed", ""],
)
def test_planned_and_health_demotions_stop_gracefully(code: str) -> None:
    assert not stop_is_fence(code, lease_valid=True)
    # Whatever the reason, a node whose lease is gone is being raced by its peer.
    assert stop_is_fence(code, lease_valid=False)


# -- the demotion (through the transitions' seam, resources faked) ---------------------


def demoted_with(code: str, lease_valid: bool = True) -> list[str]:
    t, st, world = make(Role.ACTIVE, epoch=7)
    world.lease.valid.return_value = lease_valid
    seen: list[str] = []
    t.resources = [Journal("store", seen), Journal("postfix", seen)]
    t.demote(Decision(Act.DEMOTE, f"demoting: {code}", code))
    assert st.role is Role.STANDBY
    return seen


def test_a_switchover_demotion_stops_gracefully() -> None:
    assert demoted_with("switchover") == ["stop postfix", "stop store"]


def test_a_demotion_whose_lease_ran_out_kills() -> None:
    assert demoted_with("lease_lost", lease_valid=False) == ["kill postfix", "kill store"]


def test_a_demotion_after_the_session_lost_the_lock_kills() -> None:
    assert demoted_with("lock_lost") == ["kill postfix", "kill store"]


def test_a_shutdown_of_the_daemon_stops_gracefully() -> None:
    assert demoted_with("shutdown") == ["stop postfix", "stop store"]


# -- fence-self ----------------------------------------------------------------------

FENCED_NODE = """
cluster: mail
node: {{name: mail2, address: 10.0.0.12, state_dir: {state}}}
peers: {{mail1: {{address: 10.0.0.11}}}}
zookeeper: {{hosts: "127.0.0.1:2181", insecure: true}}
fencing: [{{type: lease-wait}}]
watchdog: {{device: /dev/watchdog}}
resources:
  - type: command
    start: [/bin/true]
    stop: [sh, -c, 'echo stop store >> {log}']
  - type: command
    start: [/bin/true]
    stop: [sh, -c, 'echo stop postfix >> {log}']
    kill: [sh, -c, 'echo kill postfix >> {log}']
"""


def test_fence_self_takes_the_fast_path_and_stops_what_has_none(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    path = tmp_path / "failoverd.yaml"
    path.write_text(FENCED_NODE.format(state=tmp_path / "state", log=log))
    out = io.StringIO()
    assert run_fence_self(load_config(str(path)), 6, False, out) == 0, out.getvalue()
    assert log.read_text().splitlines() == ["kill postfix", "stop store"]
    assert out.getvalue().splitlines()[-1] == "fenced mail2 at epoch 6"


# -- command: the `kill:` key ----------------------------------------------------------


def test_command_kill_runs_its_own_argv_and_falls_back_to_stop(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    both = CommandResourceConfig(
        start=("true",),
        stop=("sh", "-c", f"echo stop >> {log}"),
        kill=("sh", "-c", f"echo kill >> {log}"),
    )
    build_resource(both).kill(ENV)  # type: ignore[attr-defined]
    assert log.read_text() == "kill\n"
    build_resource(CommandResourceConfig(("true",), both.stop)).kill(ENV)  # type: ignore[attr-defined]
    assert log.read_text() == "kill\nstop\n"


def test_a_failed_kill_is_named_by_its_key_path(tmp_path: Path) -> None:
    cfg = CommandResourceConfig(("true",), ("true",), kill=("sh", "-c", "exit 3"))
    res = CommandResource(cfg, key="resources[2]")
    with pytest.raises(ResourceError) as e:
        res.kill(ENV)
    assert str(e.value) == "resources[2].kill (command): exited with 3"


KILL_YAML = """
cluster: mail
node: {{name: mail1, address: 10.0.0.11, state_dir: {state}}}
peers: {{mail2: {{address: 10.0.0.12}}}}
zookeeper: {{hosts: "127.0.0.1:2181", insecure: true}}
fencing: [{{type: lease-wait}}]
watchdog: {{device: /dev/watchdog}}
resources:
  - type: command
    start: [/usr/local/sbin/mailq-start]
    stop: [/usr/local/sbin/mailq-stop]
    kill: {kill}
"""


def test_kill_is_read_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "failoverd.yaml"
    kill = "[/usr/local/sbin/postfix-kill, /etc/postfix]"
    path.write_text(KILL_YAML.format(state=tmp_path / "s", kill=kill))
    config = load_config(str(path))
    (res,) = config.resources
    assert isinstance(res, CommandResourceConfig)
    assert res.kill == ("/usr/local/sbin/postfix-kill", "/etc/postfix")
    # root runs it, like start and stop: held to the same ownership rule.
    assert ("resources[0].kill", res.kill) in root_argvs(config)


def test_a_kill_that_is_no_command_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "failoverd.yaml"
    path.write_text(KILL_YAML.format(state=tmp_path / "s", kill='"pkill -9 master"'))
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert str(path) in str(e.value)
    assert "resources[0].kill: expected a non-empty list of strings" in str(e.value)


# -- the record of what was started: older and newer daemons read each other's ----------


def test_a_record_from_before_kill_existed_is_still_read(tmp_path: Path) -> None:
    record = StartedRecord(tmp_path)
    old = {"type": "command", "start": ["a"], "stop": ["b"], "status": None, "timeout": 30.0}
    record.path.write_text(json.dumps({"v": 1, "epoch": 3, "resources": [old]}))
    assert record.read() == (CommandResourceConfig(("a",), ("b",)),)


def test_a_record_without_kill_is_written_as_before_and_one_with_kill_round_trips(
    tmp_path: Path,
) -> None:
    record = StartedRecord(tmp_path)
    plain = CommandResourceConfig(("a",), ("b",))
    fast = CommandResourceConfig(("a",), ("b",), kill=("c",))
    record.write([plain], epoch=3)
    # An older daemon's fence-self (a downgrade) reads this one.
    assert "kill" not in json.loads(record.path.read_text())["resources"][0]
    record.write([plain, fast], epoch=3)
    assert record.read() == (plain, fast)
    # How a resource is stopped fast is not which resource it is.
    assert identity(plain) == identity(fast)


# -- systemd: SIGKILL to every process of the units, then stop -------------------------


def fake_systemctl(tmp_path: Path) -> Path:
    """Logs its argv; `show` answers: postfix.service consists of postfix@-.service,
    every unit inactive with no main process (as after the SIGKILL)."""
    log = tmp_path / "systemctl.log"
    return script(
        tmp_path / "bin" / "systemctl",
        f"""echo "$*" >> {log}
if [ "$1" = show ]; then
  parts=""; [ "$4" = postfix.service ] && parts="postfix@-.service"
  printf 'ActiveState=failed\\nMainPID=0\\nConsistsOf=%s\\n' "$parts"
fi
exit 0
""",
    )


def test_systemd_kill_sigkills_every_process_of_the_units_and_their_parts_then_stops(
    tmp_path: Path,
) -> None:
    fake = fake_systemctl(tmp_path)
    cfg = SystemdResourceConfig(("postfix.service", "dovecot.service"), 5.0)
    res = SystemdResource(cfg, systemctl=str(fake), unit_dir=tmp_path / "units")
    res.kill(ENV)
    calls = [c for c in (tmp_path / "systemctl.log").read_text().splitlines()]
    acts = [c for c in calls if not c.startswith("show ")]
    assert acts == [
        # Debian's postfix.service only stands for postfix@-.service, where the
        # master runs: killing the wrapper alone would kill nothing.
        "kill --signal=SIGKILL --kill-who=all dovecot.service postfix.service postfix@-.service",
        # Cancels an auto-restart (Restart=) the SIGKILL may have queued.
        "stop dovecot.service postfix.service",
        # Killed units end "failed": back to inactive, start limit reset.
        "reset-failed dovecot.service postfix.service postfix@-.service",
    ]
    # The same verification as a stop: what systemd shows after it.
    assert calls.index(acts[1]) < max(i for i, c in enumerate(calls) if "ActiveState" in c)


def test_systemd_kill_is_judged_by_what_runs_not_by_systemctl_kill_failing(
    tmp_path: Path,
) -> None:
    # `systemctl kill` fails for a unit that is not loaded or has nothing to kill.
    log = tmp_path / "systemctl.log"
    fake = script(
        tmp_path / "bin" / "systemctl",
        f"""echo "$*" >> {log}
[ "$1" = kill ] && {{ echo "Failed to kill unit dovecot.service: not loaded" >&2; exit 1; }}
[ "$1" = show ] && printf 'ActiveState=inactive\\nMainPID=0\\nConsistsOf=\\n'
exit 0
""",
    )
    res = SystemdResource(SystemdResourceConfig(("dovecot.service",), 5.0), systemctl=str(fake))
    res.unit_dir = tmp_path / "units"
    res.kill(ENV)
    assert "stop dovecot.service" in log.read_text().splitlines()


# -- ocf and vip: their stop is already the fast path -----------------------------------


def test_ocf_kill_is_the_agents_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    script(tmp_path / "ocf" / "resource.d" / "lab" / "Thing", f'echo "$1" >> {calls}; exit 0\n')
    monkeypatch.setenv("OCF_ROOT", str(tmp_path / "ocf"))
    res: Any = build_resource(OcfResourceConfig("lab:Thing", timeout=5.0))
    res.kill(ENV)
    assert calls.read_text() == "stop\n"


def test_every_kind_has_a_fast_path() -> None:
    from failoverd.config import VipResourceConfig

    kinds = build_resources(
        [
            CommandResourceConfig(("a",), ("b",)),
            SystemdResourceConfig(("postfix.service",)),
            VipResourceConfig("192.0.2.25/24", "eth0"),
            OcfResourceConfig("heartbeat:Filesystem"),
        ]
    )
    assert all(callable(getattr(r, "kill", None)) for r in kinds)
