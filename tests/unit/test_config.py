"""load_config / check_report: the config file format and its timing budget."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from failoverd.checks.report import check_report
from failoverd.config import (
    CheckConfig,
    CommandFencerConfig,
    CommandResourceConfig,
    Config,
    ConfigError,
    LeaseWaitFencerConfig,
    MetricsConfig,
    SshFencerConfig,
    SystemdResourceConfig,
    VipResourceConfig,
    WatchdogConfig,
    load_config,
)
from tests.support.access import state_dir_for

REPO = Path(__file__).resolve().parents[2]

# The full documented example config, except resources[2]'s "[...]" placeholders and the
# credential file, which points into the test's tmp_path.
DESIGN_EXAMPLE = """\
cluster: mail-east                 # znodes under <zookeeper.root>/mail-east
node:
  name: mail1
  address: 10.0.0.11               # where peers reach this node (ssh fencing)
  priority: 0                      # lower is preferred
peers:                             # every other member of the cluster
  mail2: {address: 10.0.0.12}
zookeeper:
  hosts: zk1:2181,zk2:2181,zk3:2181
  session_timeout: 3s
  root: /failoverd
  auth: {scheme: digest, credential_file: SECRET}   # optional
health:
  interval: 1s
  rise: 2                          # consecutive passes to become healthy
  fall: 3                          # consecutive failures to become unhealthy
  checks:
    - {type: smtp, host: 127.0.0.1, port: 25, timeout: 2s}
    - {type: imap, host: 127.0.0.1, port: 143, timeout: 2s}
    - {type: tcp, host: 127.0.0.1, port: 4190, timeout: 1s}
    - {type: command, argv: [/usr/local/bin/check-spool], timeout: 5s}
resources:                         # started in order on promote, stopped in reverse
  - {type: vip, address: 192.0.2.25/24, interface: eth0}
  - {type: systemd, units: [postfix.service, dovecot.service]}
  - {type: command, start: [/usr/local/sbin/mailstore-mount], stop: [/usr/local/sbin/mailstore-umount], status: [/usr/bin/mountpoint, -q, /srv/mail], timeout: 30s}
fencing:                           # tried in order until one succeeds
  - {type: ssh, user: failoverd, key_file: /etc/failoverd/fence_key,
     known_hosts: /etc/failoverd/known_hosts, port: 22, timeout: 5s,
     verify_ports: [25, 143]}      # after the fence these must refuse connections
  - {type: command, argv: [/usr/local/sbin/pdu-off, "{node}"], timeout: 20s}
  # - {type: lease-wait}           # only valid when watchdog is configured
watchdog: {systemd: true, device: /dev/watchdog, timeout: 10s}   # optional
switchover: {timeout: 10s}
flap: {max_failovers: 3, window: 10m, backoff: 30s}
metrics: {listen: 127.0.0.1:9468}  # optional
log: {format: json, level: info}
"""  # noqa: E501 - kept one line per item, as in the design


def minimal() -> dict[str, Any]:
    return {
        "cluster": "mail-east",
        "node": {"name": "mail1", "address": "10.0.0.11"},
        "peers": {"mail2": {"address": "10.0.0.12"}},
        "zookeeper": {"hosts": "zk1:2181,zk2:2181,zk3:2181"},
        "fencing": [{"type": "command", "argv": ["/usr/local/sbin/pdu-off", "{node}"]}],
    }


def write(tmp_path: Path, content: dict[str, Any] | str) -> str:
    path = tmp_path / "failoverd.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return str(path)


def load(tmp_path: Path, content: dict[str, Any] | str) -> Config:
    return load_config(write(tmp_path, content))


def problems(tmp_path: Path, content: dict[str, Any] | str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, content)
    return e.value.problems


def secret(tmp_path: Path, text: str = "failoverd:s3cret\n", mode: int = 0o600) -> str:
    path = tmp_path / "zk.secret"
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


# --- whole files -----------------------------------------------------------------


def test_design_example_loads_with_units_resolved(tmp_path: Path) -> None:
    text = DESIGN_EXAMPLE.replace("SECRET", secret(tmp_path))
    c = load(tmp_path, text)
    assert (c.cluster, c.node.name, c.node.address) == ("mail-east", "mail1", "10.0.0.11")
    assert [(p.name, p.address) for p in c.peers] == [("mail2", "10.0.0.12")]
    assert c.zookeeper.session_timeout == 3.0 and c.zookeeper.lease_margin == 0.75
    assert c.zookeeper.auth is not None and c.zookeeper.auth.credential == "failoverd:s3cret"
    assert c.health.checks[2] == CheckConfig(
        "tcp", timeout=1.0, host="127.0.0.1", port=4190, scope="active"
    )
    assert c.health.checks[3].argv == ("/usr/local/bin/check-spool",)
    assert c.resources[0] == VipResourceConfig("192.0.2.25/24", "eth0")
    assert c.resources[1] == SystemdResourceConfig(("postfix.service", "dovecot.service"))
    assert isinstance(c.resources[2], CommandResourceConfig)
    assert c.resources[2].status == ("/usr/bin/mountpoint", "-q", "/srv/mail")
    ssh = c.fencing[0]
    assert isinstance(ssh, SshFencerConfig) and ssh.verify_ports == (25, 143)
    assert c.fencing[1] == CommandFencerConfig(("/usr/local/sbin/pdu-off", "{node}"), 20.0)
    assert c.watchdog == WatchdogConfig(systemd=True, device="/dev/watchdog", timeout=10.0)
    assert (c.flap.window, c.flap.backoff, c.switchover.timeout) == (600.0, 30.0, 10.0)
    assert c.metrics == MetricsConfig("127.0.0.1", 9468)
    assert c.cluster_path == "/failoverd/mail-east"


def test_deploy_example_passes_check(tmp_path: Path) -> None:
    # The example as installed: its credential file and state dir exist (here, as
    # stand-ins at test paths); everything else is checked as shipped. Its scripts
    # are not installed here: host_checks (tests/unit/test_host_checks.py) says so.
    text = (REPO / "deploy/examples/failoverd.yaml").read_text()
    text = text.replace("/etc/failoverd/zk.secret", secret(tmp_path))
    text = text.replace("/var/lib/failoverd", str(state_dir_for(tmp_path, "example")))
    code, text = check_report(write(tmp_path, text), machine=False)
    assert code == 0, text
    assert "OK (cluster mail-east, node mail1, 1 peer, 2 fencing methods: ssh, command)" in text


def test_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    c = load(tmp_path, minimal())
    assert c.node.priority == 0 and c.node.priority_delay == 1.0
    assert c.node.state_dir == "/var/lib/failoverd"
    assert c.zookeeper.root == "/failoverd" and c.zookeeper.auth is None
    assert (c.health.interval, c.health.rise, c.health.fall) == (1.0, 2, 3)
    assert c.watchdog is None and c.metrics is None
    assert (c.log.format, c.log.level) == ("json", "info")
    assert (c.flap.max_failovers, c.flap.window, c.flap.backoff) == (3, 600.0, 30.0)
    assert c.fencing == (CommandFencerConfig(("/usr/local/sbin/pdu-off", "{node}")),)


def test_config_is_frozen(tmp_path: Path) -> None:
    c = load(tmp_path, minimal())
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.cluster = "other"  # type: ignore[misc]


# --- reading the file ------------------------------------------------------------


def test_garbage_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "cluster: mail-east\nnode: [unclosed\n")
    assert problem.startswith(f"{tmp_path}/failoverd.yaml: line 3")


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    assert problems(tmp_path, "# nothing yet\n") == [
        f"{tmp_path}/failoverd.yaml: the file is empty"
    ]


def test_top_level_list_is_rejected(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "- cluster: mail-east\n")
    assert "expected a mapping at the top level" in problem


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(str(tmp_path / "missing.yaml"))
    assert e.value.problems == [f"{tmp_path}/missing.yaml: cannot read: No such file or directory"]


def test_a_key_given_twice_is_rejected_not_silently_overridden(tmp_path: Path) -> None:
    text = yaml.safe_dump(minimal()) + "fencing: []\n"
    (problem,) = problems(tmp_path, text)
    assert "duplicate key 'fencing'" in problem and ": line " in problem


# --- how problems are reported ---------------------------------------------------


def test_problem_names_file_key_path_and_expected_form(tmp_path: Path) -> None:
    data = minimal()
    data["fencing"].append({"type": "command", "argv": ["/bin/true"], "timeout": "fast"})
    assert problems(tmp_path, data) == [
        f"{tmp_path}/failoverd.yaml: fencing[1].timeout: expected a duration like 500ms, 3s, "
        "10m or a number of seconds, got 'fast'"
    ]


def test_every_problem_is_listed_not_just_the_first(tmp_path: Path) -> None:
    data = minimal()
    data["cluster"] = "mail east"
    data["node"]["priority"] = -1
    data["health"] = {"interval": "soon", "checks": [{"type": "smtp"}]}
    data["log"] = {"level": "verbose"}
    found = problems(tmp_path, data)
    keys = [p.split(": ")[1] for p in found]
    assert keys == [
        "cluster",
        "node.priority",
        "health.checks[0].port",
        "health.interval",
        "log.level",
    ]
    assert all(p.startswith(f"{tmp_path}/failoverd.yaml: ") for p in found)


def test_typo_in_fencing_key_is_reported_with_suggestion(tmp_path: Path) -> None:
    data = minimal()
    data["fenicng"] = data.pop("fencing")
    found = problems(tmp_path, data)
    assert any("fenicng: unknown key 'fenicng'; did you mean 'fencing'?" in p for p in found)
    assert any("fencing: no fencing method configured" in p for p in found)


def test_typo_inside_a_fencing_method_is_reported_at_its_key_path(tmp_path: Path) -> None:
    data = minimal()
    data["fencing"][0]["tiemout"] = "5s"
    (problem,) = problems(tmp_path, data)
    assert problem.endswith("fencing[0].tiemout: unknown key 'tiemout'; did you mean 'timeout'?")


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path: Path) -> None:
    data = minimal()
    data["node"]["zzz"] = 1
    (problem,) = problems(tmp_path, data)
    assert problem.endswith(
        "node.zzz: unknown key 'zzz' (known: address, name, priority, priority_delay, state_dir)"
    )


def test_missing_required_keys_are_each_reported(tmp_path: Path) -> None:
    found = problems(tmp_path, {"log": {"format": "console"}})
    keys = {p.split(": ")[1] for p in found}
    assert {"cluster", "node.name", "node.address", "peers", "zookeeper.hosts", "fencing"} <= keys


def test_a_section_of_the_wrong_shape_is_rejected(tmp_path: Path) -> None:
    data = minimal()
    data["health"] = ["smtp"]
    (problem,) = problems(tmp_path, data)
    assert problem.endswith("health: expected a mapping, got ['smtp']")


# --- values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("500ms", 0.5), ("3s", 3.0), ("10m", 600.0), ("1h", 3600.0), ("1.5s", 1.5),
     (2, 2.0), (0.25, 0.25), ("7", 7.0)],
)  # fmt: skip
def test_durations_are_resolved_to_seconds(tmp_path: Path, value: object, seconds: float) -> None:
    data = minimal()
    data["switchover"] = {"timeout": value}
    assert load(tmp_path, data).switchover.timeout == seconds


@pytest.mark.parametrize("value", ["fast", True, "3 days", [3], ".inf", "-1s", "3 s s"])
def test_non_durations_are_rejected(tmp_path: Path, value: object) -> None:
    data = minimal()
    data["switchover"] = {"timeout": value}
    text = yaml.safe_dump(data).replace("'.inf'", ".inf")  # a YAML float, not a string
    (problem,) = problems(tmp_path, text)
    assert "switchover.timeout: expected a duration like 500ms, 3s, 10m or a number" in problem


@pytest.mark.parametrize("value", [0, "0ms", -2])
def test_durations_that_must_be_positive_reject_zero_and_less(
    tmp_path: Path, value: object
) -> None:
    data = minimal()
    data["switchover"] = {"timeout": value}
    (problem,) = problems(tmp_path, data)
    assert problem.endswith(f"switchover.timeout: must be greater than 0, got {value!r}")


def test_zero_priority_delay_and_backoff_are_allowed(tmp_path: Path) -> None:
    data = minimal()
    data["node"]["priority_delay"] = 0
    data["flap"] = {"backoff": "0s"}
    c = load(tmp_path, data)
    assert (c.node.priority_delay, c.flap.backoff) == (0.0, 0.0)


@pytest.mark.parametrize("value", [True, 0, "2", 1.5])
def test_counts_must_be_integers_of_at_least_one(tmp_path: Path, value: object) -> None:
    data = minimal()
    data["health"] = {"rise": value}
    (problem,) = problems(tmp_path, data)
    assert "health.rise: expected an integer of at least 1" in problem


@pytest.mark.parametrize("name", ["mail east", "mail/east", "..", ""])
def test_cluster_name_must_be_usable_as_a_znode_name(tmp_path: Path, name: str) -> None:
    data = minimal()
    data["cluster"] = name
    (problem,) = problems(tmp_path, data)
    assert problem.split(": ")[1] == "cluster"


def test_zookeeper_root_must_be_absolute(tmp_path: Path) -> None:
    data = minimal()
    data["zookeeper"]["root"] = "failoverd"
    (problem,) = problems(tmp_path, data)
    assert "zookeeper.root: expected an absolute znode path" in problem


# --- peers -----------------------------------------------------------------------


def test_peers_mapping_becomes_peer_configs(tmp_path: Path) -> None:
    data = minimal()
    data["peers"]["mail3"] = {"address": "10.0.0.13"}
    c = load(tmp_path, data)
    assert c.member_names == ("mail1", "mail2", "mail3")
    assert c.peer("mail3") is not None and c.peer("mail3").address == "10.0.0.13"  # type: ignore[union-attr]


def test_a_node_must_have_at_least_one_peer(tmp_path: Path) -> None:
    data = minimal()
    data["peers"] = {}
    (problem,) = problems(tmp_path, data)
    assert problem.split(": ")[1] == "peers" and "at least one peer" in problem


def test_peers_as_a_list_are_rejected(tmp_path: Path) -> None:
    data = minimal()
    data["peers"] = [{"name": "mail2", "address": "10.0.0.12"}]
    (problem,) = problems(tmp_path, data)
    assert "peers: expected at least one peer like {mail2: {address: ...}}" in problem


def test_a_peer_with_the_nodes_own_name_is_rejected(tmp_path: Path) -> None:
    data = minimal()
    data["peers"]["mail1"] = {"address": "10.0.0.11"}
    (problem,) = problems(tmp_path, data)
    assert "peers.mail1: 'mail1' is this node's own name" in problem


def test_a_peer_needs_an_address_and_nothing_else(tmp_path: Path) -> None:
    data = minimal()
    data["peers"]["mail2"] = {"adress": "10.0.0.12"}
    found = problems(tmp_path, data)
    assert [p.split(": ", 1)[1] for p in found] == [
        "peers.mail2.adress: unknown key 'adress'; did you mean 'address'?",
        "peers.mail2.address: is required",
    ]


# --- health checks ---------------------------------------------------------------


def test_health_checks_get_per_type_defaults(tmp_path: Path) -> None:
    data = minimal()
    data["health"] = {"checks": [{"type": "smtp", "port": 25}, {"type": "command", "argv": ["x"]}]}
    c = load(tmp_path, data)
    assert c.health.checks == (
        CheckConfig("smtp", timeout=2.0, host="127.0.0.1", port=25, scope="active"),
        CheckConfig("command", timeout=5.0, argv=("x",)),
    )


def test_a_path_check_is_judged_on_every_node_with_a_one_second_timeout(tmp_path: Path) -> None:
    data = minimal()
    data["health"] = {
        "checks": [
            {"type": "path", "path": "/srv/vmail", "mountpoint": True, "writable": True},
            {"type": "path", "path": "/etc/failoverd/drain", "absent": True, "timeout": "2s"},
        ]
    }
    assert load(tmp_path, data).health.checks == (
        CheckConfig("path", timeout=1.0, path="/srv/vmail", mountpoint=True, writable=True),
        CheckConfig("path", timeout=2.0, path="/etc/failoverd/drain", absent=True),
    )


def test_a_path_check_needs_an_absolute_path_and_absent_excludes_the_rest(
    tmp_path: Path,
) -> None:
    data = minimal()
    data["health"] = {
        "checks": [
            {"type": "path"},
            {"type": "path", "path": "srv/vmail"},
            {"type": "path", "path": "/drain", "absent": True, "writable": True},
            {"type": "path", "path": "/srv", "mountpoint": "yes"},
        ]
    }
    found = problems(tmp_path, data)
    for expected in (
        "health.checks[0].path: is required",
        "health.checks[1].path: expected an absolute path, got 'srv/vmail'",
        "health.checks[2].writable: absent: true says the path must not exist, so it cannot "
        "also be writable",
        "health.checks[3].mountpoint: expected true or false",
    ):
        assert any(expected in p for p in found), (expected, found)


def test_service_checks_judge_only_the_active_unless_scoped_always(tmp_path: Path) -> None:
    data = minimal()
    data["health"] = {
        "grace": "3s",
        "checks": [
            {"type": "smtp", "port": 25, "scope": "always"},
            {"type": "command", "argv": ["x"], "scope": "active"},
            {"type": "imap", "port": 143, "scope": "sometimes"},
        ],
    }
    with pytest.raises(ConfigError) as err:
        load(tmp_path, data)
    assert any(
        "health.checks[2].scope: expected one of active, always" in p for p in err.value.problems
    )
    del data["health"]["checks"][2]
    c = load(tmp_path, data)
    assert [ch.scope for ch in c.health.checks] == ["always", "active"]
    assert c.health.grace == 3.0


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        ({"type": "imap"}, "port: is required"),
        ({"type": "tcp", "port": 70000}, "port: expected an integer between 1 and 65535"),
        ({"type": "tcp", "port": True}, "port: expected an integer between 1 and 65535"),
        ({"type": "command"}, "argv: is required"),
        ({"type": "command", "argv": []}, "argv: expected a non-empty list of strings"),
        ({"type": "command", "argv": "check-spool -a"}, "argv: expected a non-empty list"),
        ({"type": "http", "port": 80}, "type: expected one of smtp, imap, tcp, command"),
        ({"port": 25}, "type: expected one of smtp, imap, tcp, command, path, got None"),
        ({"type": "smtp", "port": 25, "argv": ["x"]}, "argv: unknown key 'argv'"),
    ],
)
def test_invalid_health_checks_are_rejected(tmp_path: Path, check: object, problem: str) -> None:
    data = minimal()
    data["health"] = {"checks": [check]}
    (found,) = problems(tmp_path, data)
    assert f": health.checks[0].{problem}" in found


def test_a_health_check_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    data = minimal()
    data["health"] = {"checks": ["smtp"]}
    (found,) = problems(tmp_path, data)
    assert (
        "health.checks[0]: expected a mapping with a 'type' (smtp, imap, tcp, command, path)"
        in found
    )


# --- resources -------------------------------------------------------------------


def test_resources_keep_their_order_and_defaults(tmp_path: Path) -> None:
    data = minimal()
    data["resources"] = [
        {"type": "command", "start": ["mount"], "stop": ["umount"]},
        {"type": "systemd", "units": ["postfix.service"]},
        {"type": "vip", "address": "2001:db8::25/64", "interface": "eth0", "arp_count": 5},
    ]
    c = load(tmp_path, data)
    assert c.resources == (
        CommandResourceConfig(("mount",), ("umount",), None, 30.0),
        SystemdResourceConfig(("postfix.service",), 30.0),
        VipResourceConfig("2001:db8::25/64", "eth0", timeout=5.0, arp_count=5, arp_interval=1.0),
    )


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        (
            {"type": "vip", "address": "192.0.2.25", "interface": "eth0"},
            "resources[0].address: expected an address with a prefix length like 192.0.2.25/24",
        ),
        (
            {"type": "vip", "address": "mail.example/24", "interface": "eth0"},
            "resources[0].address: expected an address with a prefix length",
        ),
        ({"type": "vip", "address": "192.0.2.25/24"}, "resources[0].interface: is required"),
        (
            {"type": "vip", "address": "192.0.2.25/24", "interface": "eth0", "arp_count": 0},
            "resources[0].arp_count: expected an integer of at least 1",
        ),
        ({"type": "systemd", "units": []}, "resources[0].units: expected a non-empty list"),
        ({"type": "command", "start": ["mount"]}, "resources[0].stop: is required"),
        (
            {"type": "command", "start": ["a"], "stop": ["b"], "status": "c"},
            "resources[0].status: expected a non-empty list of strings",
        ),
        (
            {"type": "drbd"},
            "resources[0].type: expected one of vip, systemd, command, ocf, got 'drbd'",
        ),
    ],
)
def test_invalid_resources_are_rejected(tmp_path: Path, resource: object, problem: str) -> None:
    data = minimal()
    data["resources"] = [resource]
    (found,) = problems(tmp_path, data)
    assert problem in found


# --- fencing ---------------------------------------------------------------------


def ssh_fencer(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {
        "type": "ssh",
        "user": "failoverd",
        "key_file": str(tmp_path / "fence_key"),
        "known_hosts": str(tmp_path / "known_hosts"),
        **extra,
    }


def test_no_fencing_method_is_rejected(tmp_path: Path) -> None:
    data = minimal()
    data["fencing"] = []
    assert problems(tmp_path, data) == [
        f"{tmp_path}/failoverd.yaml: fencing: no fencing method configured: "
        "a node must be able to fence its peer before it takes over"
    ]


def test_unknown_fencing_type_names_the_allowed_types(tmp_path: Path) -> None:
    data = minimal()
    data["fencing"] = [{"type": "stonith"}]
    (problem,) = problems(tmp_path, data)
    assert "fencing[0].type: expected one of ssh, command, lease-wait, got 'stonith'" in problem


@pytest.mark.parametrize("section", ["fencing", "resources"])
def test_unknown_key_in_a_list_item_without_type_is_named_with_did_you_mean(
    tmp_path: Path, section: str
) -> None:
    data = minimal()
    data[section] = [{"tyype": "command", "timeout": "5s"}]
    typo, missing = problems(tmp_path, data)
    path = f"{tmp_path}/failoverd.yaml"
    assert typo == f"{path}: {section}[0].tyype: unknown key 'tyype'; did you mean 'type'?"
    assert missing.startswith(f"{path}: {section}[0].type: expected one of ")


def test_keys_known_to_some_type_are_not_flagged_when_type_is_missing(tmp_path: Path) -> None:
    # Without a type we cannot tell which keys belong; only keys no type knows are named.
    data = minimal()
    data["fencing"] = [{"argv": ["/bin/true"], "timeout": "5s"}]
    (problem,) = problems(tmp_path, data)
    assert problem.endswith("fencing[0].type: expected one of ssh, command, lease-wait, got None")


def test_ssh_fencer_requires_user_key_and_known_hosts(tmp_path: Path) -> None:
    data = minimal()
    data["fencing"] = [{"type": "ssh"}]
    keys = [p.split(": ")[1] for p in problems(tmp_path, data)]
    assert keys == ["fencing[0].key_file", "fencing[0].known_hosts", "fencing[0].user"]


def test_verify_ports_default_to_the_health_check_ports(tmp_path: Path) -> None:
    data = minimal()
    data["health"] = {
        "checks": [
            {"type": "smtp", "port": 25},
            {"type": "command", "argv": ["check-spool"]},
            {"type": "path", "path": "/srv/vmail"},  # no port: it adds none
            {"type": "imap", "port": 143},
            {"type": "tcp", "port": 25, "host": "10.0.0.11"},
            {"type": "tcp", "port": 4190},
        ]
    }
    data["fencing"] = [ssh_fencer(tmp_path)]
    (ssh,) = load(tmp_path, data).fencing
    assert isinstance(ssh, SshFencerConfig) and ssh.verify_ports == (25, 143, 4190)


def test_explicit_verify_ports_win_over_the_health_checks(tmp_path: Path) -> None:
    data = minimal()
    data["health"] = {"checks": [{"type": "smtp", "port": 25}]}
    data["fencing"] = [ssh_fencer(tmp_path, verify_ports=[587])]
    (ssh,) = load(tmp_path, data).fencing
    assert isinstance(ssh, SshFencerConfig) and ssh.verify_ports == (587,)


def test_ssh_fence_with_nothing_to_verify_is_noted(tmp_path: Path) -> None:
    data = minimal()
    data["fencing"] = [ssh_fencer(tmp_path, verify_ports=[])]
    c = load(tmp_path, data)
    assert any(n.startswith("fencing[0].verify_ports: no ports to verify") for n in c.notes)


def test_invalid_verify_ports_are_rejected(tmp_path: Path) -> None:
    data = minimal()
    data["fencing"] = [ssh_fencer(tmp_path, verify_ports=[25, "imap"])]
    (problem,) = problems(tmp_path, data)
    assert "fencing[0].verify_ports: expected a list of port numbers" in problem


def test_missing_ssh_key_is_a_note_not_an_error(tmp_path: Path) -> None:
    data = minimal()
    data["fencing"] = [ssh_fencer(tmp_path)]
    notes = load(tmp_path, data).notes
    assert (
        f"fencing[0].key_file: {tmp_path}/fence_key does not exist yet: "
        "ssh fencing fails until it does" in notes
    )


def test_private_ssh_key_is_accepted(tmp_path: Path) -> None:
    key = tmp_path / "fence_key"
    key.write_text("KEY")
    key.chmod(0o600)
    data = minimal()
    data["fencing"] = [ssh_fencer(tmp_path)]
    assert not any("key_file" in n for n in load(tmp_path, data).notes)


def test_world_readable_ssh_key_is_rejected(tmp_path: Path) -> None:
    key = tmp_path / "fence_key"
    key.write_text("KEY")
    key.chmod(0o644)
    data = minimal()
    data["fencing"] = [ssh_fencer(tmp_path)]
    (problem,) = problems(tmp_path, data)
    assert problem.endswith(
        f"fencing[0].key_file: {key} is readable by others (mode 0644): chmod 600 it"
    )


def test_lease_wait_without_watchdog_is_rejected(tmp_path: Path) -> None:
    data = minimal()
    data["fencing"].append({"type": "lease-wait"})
    (problem,) = problems(tmp_path, data)
    assert problem.startswith(
        f"{tmp_path}/failoverd.yaml: fencing[1]: lease-wait is only valid "
        "when watchdog is configured"
    )


def test_lease_wait_with_a_watchdog_section_that_enables_nothing_is_rejected(
    tmp_path: Path,
) -> None:
    data = minimal()
    data["watchdog"] = {"systemd": False, "timeout": "10s"}
    data["fencing"] = [{"type": "lease-wait"}]
    (problem,) = problems(tmp_path, data)
    assert "fencing[0]: lease-wait is only valid when watchdog is configured" in problem


def test_lease_wait_with_only_the_systemd_watchdog_is_rejected_by_check(tmp_path: Path) -> None:
    # systemd's watchdog restarts the daemon; it stops neither Postfix nor the VIP of
    # a frozen node, so waiting out its timeout proves nothing.
    data = minimal()
    data["watchdog"] = {"systemd": True, "timeout": "10s"}
    data["fencing"] = [{"type": "lease-wait"}]
    code, text = check_report(write(tmp_path, data))
    assert code == 2
    assert f"{tmp_path}/failoverd.yaml: fencing[0]: lease-wait is only valid" in text
    assert "watchdog.device" in text and "only restarts the daemon" in text


def test_lease_wait_alone_with_a_watchdog_is_accepted_and_noted(tmp_path: Path) -> None:
    data = minimal()
    data["watchdog"] = {"device": "/dev/watchdog", "timeout": "10s"}
    data["fencing"] = [{"type": "lease-wait"}]
    c = load(tmp_path, data)
    assert c.fencing == (LeaseWaitFencerConfig(),)
    # 3s session + 10s watchdog + 0.75s margin.
    assert any(
        n.startswith("fencing[0]: the only fencing method; a takeover by lease-wait waits 13.75s")
        and "safe only if every member runs a watchdog device" in n
        for n in c.notes
    )


def test_lease_wait_takes_no_options(tmp_path: Path) -> None:
    data = minimal()
    data["watchdog"] = {"device": "/dev/watchdog"}
    data["fencing"] = [{"type": "lease-wait", "timeout": "5s"}]
    (problem,) = problems(tmp_path, data)
    assert "fencing[0].timeout: unknown key 'timeout'" in problem


def test_methods_after_lease_wait_are_noted_as_unreachable(tmp_path: Path) -> None:
    data = minimal()
    data["watchdog"] = {"device": "/dev/watchdog"}
    data["fencing"].insert(0, {"type": "lease-wait"})
    notes = load(tmp_path, data).notes
    assert "fencing[0]: lease-wait always succeeds, so the methods after it never run" in notes


# --- ZooKeeper auth --------------------------------------------------------------


def with_auth(path: str) -> dict[str, Any]:
    data = minimal()
    data["zookeeper"]["auth"] = {"scheme": "digest", "credential_file": path}
    return data


def test_credential_is_read_and_stripped(tmp_path: Path) -> None:
    c = load(tmp_path, with_auth(secret(tmp_path, " failoverd:pa:ss \n")))
    assert c.zookeeper.auth is not None and c.zookeeper.auth.credential == "failoverd:pa:ss"


def test_world_readable_credential_file_is_rejected(tmp_path: Path) -> None:
    path = secret(tmp_path, mode=0o644)
    (problem,) = problems(tmp_path, with_auth(path))
    assert problem == (
        f"{tmp_path}/failoverd.yaml: zookeeper.auth.credential_file: "
        f"{path} is readable by others (mode 0644): chmod 600 it"
    )


def test_group_writable_credential_file_is_rejected(tmp_path: Path) -> None:
    path = secret(tmp_path, mode=0o620)
    (problem,) = problems(tmp_path, with_auth(path))
    assert "is writable by others (mode 0620)" in problem


def test_missing_credential_file_is_an_error(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, with_auth(str(tmp_path / "nope")))
    assert "zookeeper.auth.credential_file: cannot read" in problem


def test_credential_must_look_like_user_colon_password_and_is_not_echoed(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, with_auth(secret(tmp_path, "hunter2\n")))
    assert "does not look like user:password" in problem and "hunter2" not in problem


def test_only_digest_and_sasl_auth_are_supported(tmp_path: Path) -> None:
    data = with_auth(secret(tmp_path))
    data["zookeeper"]["auth"]["scheme"] = "kerberos"
    (problem,) = problems(tmp_path, data)
    assert "zookeeper.auth.scheme: expected one of digest, sasl, got 'kerberos'" in problem


# --- watchdog, metrics, log ------------------------------------------------------


def test_watchdog_section_that_enables_nothing_is_noted_and_dropped(tmp_path: Path) -> None:
    data = minimal()
    data["watchdog"] = {"systemd": False, "device": None}
    c = load(tmp_path, data)
    assert c.watchdog is None
    assert any(n.startswith("watchdog: neither systemd: true nor a device") for n in c.notes)


@pytest.mark.parametrize(
    ("listen", "host", "port"), [("127.0.0.1:9468", "127.0.0.1", 9468), ("[::1]:9468", "::1", 9468)]
)
def test_metrics_listen_is_split_into_host_and_port(
    tmp_path: Path, listen: str, host: str, port: int
) -> None:
    data = minimal()
    data["metrics"] = {"listen": listen}
    assert load(tmp_path, data).metrics == MetricsConfig(host, port)


@pytest.mark.parametrize("listen", ["9468", "localhost", "127.0.0.1:0", "::1:9468", "host:99999"])
def test_bad_metrics_listen_is_rejected(tmp_path: Path, listen: str) -> None:
    data = minimal()
    data["metrics"] = {"listen": listen}
    (problem,) = problems(tmp_path, data)
    assert "metrics.listen: expected host:port like 127.0.0.1:9468 or [::1]:9468" in problem


@pytest.mark.parametrize("listen", [9468, "9468"])
def test_a_bare_metrics_port_says_which_form_is_wanted(tmp_path: Path, listen: object) -> None:
    data = minimal()
    data["metrics"] = {"listen": listen}
    (problem,) = problems(tmp_path, data)
    assert problem == (
        f"{tmp_path}/failoverd.yaml: metrics.listen: expected host:port like 127.0.0.1:9468 "
        "or [::1]:9468, got the bare port 9468: write 127.0.0.1:9468 (this host only) "
        "or 0.0.0.0:9468 (every address)"
    )


def test_log_format_and_level_are_checked(tmp_path: Path) -> None:
    data = minimal()
    data["log"] = {"format": "text", "level": "warning"}
    (problem,) = problems(tmp_path, data)
    assert "log.format: expected one of json, console, got 'text'" in problem


# --- timing budget ---------------------------------------------------------------


def test_lease_margin_defaults_to_a_quarter_of_the_session_timeout(tmp_path: Path) -> None:
    data = minimal()
    data["zookeeper"]["session_timeout"] = "10s"
    assert load(tmp_path, data).zookeeper.lease_margin == 2.5


def test_lease_margin_of_exactly_half_the_session_timeout_is_accepted(tmp_path: Path) -> None:
    data = minimal()
    data["zookeeper"].update(session_timeout="4s", lease_margin="2s")
    assert load(tmp_path, data).zookeeper.lease_margin == 2.0


def test_lease_margin_over_half_the_session_timeout_is_rejected_naming_both_keys(
    tmp_path: Path,
) -> None:
    data = minimal()
    data["zookeeper"].update(session_timeout="3s", lease_margin="2s")
    (problem,) = problems(tmp_path, data)
    assert problem == (
        f"{tmp_path}/failoverd.yaml: zookeeper.lease_margin: 2s is more than half of "
        "zookeeper.session_timeout (3s): it must be at most 1.5s so the lease is renewed "
        "at least twice before it lapses"
    )


@pytest.mark.parametrize("timeout", ["500ms", "121s"])
def test_session_timeout_outside_1s_to_120s_is_rejected(tmp_path: Path, timeout: str) -> None:
    data = minimal()
    data["zookeeper"]["session_timeout"] = timeout
    (problem,) = problems(tmp_path, data)
    assert "zookeeper.session_timeout: must be 1s to 120s" in problem


@pytest.mark.parametrize("timeout", ["1s", "120s"])
def test_session_timeout_limits_are_inclusive(tmp_path: Path, timeout: str) -> None:
    data = minimal()
    data["zookeeper"]["session_timeout"] = timeout
    data["switchover"] = {"timeout": "5m"}
    assert load(tmp_path, data).zookeeper.session_timeout in (1.0, 120.0)


def test_resources_slower_to_stop_than_the_lease_margin_are_noted(tmp_path: Path) -> None:
    data = minimal()
    data["resources"] = [
        {"type": "vip", "address": "192.0.2.25/24", "interface": "eth0", "timeout": "1s"},
        {"type": "systemd", "units": ["postfix.service"], "timeout": "10s"},
    ]
    notes = load(tmp_path, data).notes
    assert (
        "resources: may take up to 11s to stop but the lease margin is only 0.75s: "
        "a partitioned active may still be stopping when its session expires; "
        "fencing the old active is what keeps this safe"
    ) in notes


def test_resources_that_stop_within_the_lease_margin_are_not_noted(tmp_path: Path) -> None:
    data = minimal()
    data["zookeeper"].update(session_timeout="20s", lease_margin="10s")
    data["switchover"] = {"timeout": "30s"}
    data["resources"] = [{"type": "vip", "address": "192.0.2.25/24", "interface": "eth0"}]
    assert not any(n.startswith("resources:") for n in load(tmp_path, data).notes)


def test_health_failover_faster_than_session_expiry_is_noted(tmp_path: Path) -> None:
    data = minimal()
    data["zookeeper"]["session_timeout"] = "10s"
    data["switchover"] = {"timeout": "30s"}
    data["health"] = {"interval": "1s", "fall": 3, "checks": [{"type": "smtp", "port": 25}]}
    notes = load(tmp_path, data).notes
    assert any(
        n.startswith(
            "health: health.interval (1s) x health.fall (3) is shorter than "
            "zookeeper.session_timeout (10s)"
        )
        for n in notes
    )


def test_health_failover_as_slow_as_session_expiry_is_not_noted(tmp_path: Path) -> None:
    data = minimal()
    data["health"] = {"interval": "1s", "fall": 3, "checks": [{"type": "smtp", "port": 25}]}
    assert not any(n.startswith("health:") for n in load(tmp_path, data).notes)


def test_switchover_timeout_not_above_session_timeout_is_noted(tmp_path: Path) -> None:
    data = minimal()
    data["switchover"] = {"timeout": "3s"}
    notes = load(tmp_path, data).notes
    assert any(
        n.startswith("switchover.timeout: 3s is not longer than zookeeper.session_timeout (3s)")
        for n in notes
    )


def test_no_health_checks_is_noted(tmp_path: Path) -> None:
    assert any(n.startswith("health.checks: none") for n in load(tmp_path, minimal()).notes)


# --- check_report ----------------------------------------------------------------


def checkable(tmp_path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """What --check also wants beyond the file: ZooKeeper auth and a usable state dir."""
    data["zookeeper"]["auth"] = {"scheme": "digest", "credential_file": secret(tmp_path)}
    data["node"]["state_dir"] = str(state_dir_for(tmp_path, data["node"]["name"]))
    return data


def test_check_report_summarises_a_valid_file_with_its_notes(tmp_path: Path) -> None:
    data = checkable(tmp_path, minimal())
    data["fencing"].insert(0, ssh_fencer(tmp_path, verify_ports=[25]))
    path = write(tmp_path, data)
    code, text = check_report(path, machine=False)
    lines = text.splitlines()
    assert code == 0
    assert lines[0] == (
        f"{path}: OK (cluster mail-east, node mail1, 1 peer, 2 fencing methods: ssh, command)"
    )
    assert (
        f"{path}: note: fencing[0].key_file: {tmp_path}/fence_key does not exist yet: "
        "ssh fencing fails until it does" in lines
    )
    assert all(line.startswith(f"{path}: note: ") for line in lines[1:])


def test_check_report_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    data = minimal()
    data["fencing"] = []
    data["node"]["name"] = "mail2"
    path = write(tmp_path, data)
    code, text = check_report(path)
    assert code == 2
    assert text.splitlines() == [
        f"{path}: peers.mail2: 'mail2' is this node's own name (node.name); list only the others",
        f"{path}: fencing: no fencing method configured: "
        "a node must be able to fence its peer before it takes over",
    ]
