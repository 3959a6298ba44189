"""`name:` and `after:` of resources as an operator writes them: YAML text in a file,
errors that name the file and the key, exit 2 from --check."""

from __future__ import annotations

from pathlib import Path

import pytest

from failoverd.checks.report import check_report
from failoverd.config import ConfigError, load_config
from failoverd.config.order import plan, resource_name

HEAD = """\
cluster: mail-east
node: {name: mail1, address: 10.0.0.11}
peers: {mail2: {address: 10.0.0.12}}
zookeeper: {hosts: "zk1:2181"}
fencing:
  - {type: command, argv: [/usr/local/sbin/pdu-off, "{node}"]}
resources:
"""

MAIL = """\
  - type: ocf
    name: store
    agent: heartbeat:Filesystem
    params: {device: /dev/drbd0, directory: /srv/mail, fstype: ext4}
  - {type: vip, name: vip, address: 192.0.2.25/24, interface: eth0, after: []}
  - type: systemd
    name: postfix
    units: [postfix.service]
    after: [store, vip]
  - type: systemd
    name: dovecot
    units: [dovecot.service]
    after: [store, vip]
"""


def write(tmp_path: Path, resources: str) -> str:
    path = tmp_path / "failoverd.yaml"
    path.write_text(HEAD + resources)
    return str(path)


def problems(tmp_path: Path, resources: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, resources))
    return e.value.problems


def test_names_and_after_are_read_from_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MAIL))
    assert [c.name for c in cfg.resources] == ["store", "vip", "postfix", "dovecot"]
    assert [c.after for c in cfg.resources] == [None, (), ("store", "vip"), ("store", "vip")]
    names = [resource_name(c, f"resources[{i}]") for i, c in enumerate(cfg.resources)]
    order = plan(names, [c.after for c in cfg.resources])
    # The store and the VIP together, then Postfix and Dovecot together.
    assert order.groups() == [[0, 1], [2, 3]]


def test_without_names_and_after_the_config_is_what_it_was(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            "  - {type: vip, address: 192.0.2.25/24, interface: eth0}\n"
            "  - {type: command, start: [/bin/true], stop: [/bin/true]}\n",
        )
    )
    assert [(c.name, c.after) for c in cfg.resources] == [("", None), ("", None)]
    names = [resource_name(c, f"resources[{i}]") for i, c in enumerate(cfg.resources)]
    assert names == ["vip 192.0.2.25/24 on eth0", "command resources[1]"]
    assert plan(names, [None, None]).serial


def test_after_may_name_a_resource_by_its_derived_name(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            "  - {type: vip, address: 192.0.2.25/24, interface: eth0}\n"
            "  - {type: command, start: [/bin/true], stop: [/bin/true], after: []}\n"
            "  - type: command\n"
            "    start: [/bin/true]\n"
            "    stop: [/bin/true]\n"
            '    after: ["vip 192.0.2.25/24 on eth0", "command resources[1]"]\n',
        )
    )
    assert cfg.resources[2].after == ("vip 192.0.2.25/24 on eth0", "command resources[1]")


def test_an_after_naming_no_resource_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    (problem,) = problems(
        tmp_path,
        "  - {type: vip, name: vip, address: 192.0.2.25/24, interface: eth0}\n"
        "  - {type: systemd, name: postfix, units: [postfix.service], after: [vip, store]}\n",
    )
    assert problem == (
        f"{path}: resources[1].after[1]: no resource named 'store' "
        "(the resources are 'vip', 'postfix')"
    )


def test_a_resource_that_waits_for_itself_is_refused(tmp_path: Path) -> None:
    (problem,) = problems(
        tmp_path, "  - {type: systemd, name: postfix, units: [p.service], after: [postfix]}\n"
    )
    assert problem.endswith("resources[0].after[0]: 'postfix' is this resource itself")


def test_a_name_given_twice_is_refused(tmp_path: Path) -> None:
    (problem,) = problems(
        tmp_path,
        "  - {type: systemd, name: mail, units: [postfix.service]}\n"
        "  - {type: systemd, name: mail, units: [dovecot.service]}\n",
    )
    assert problem.endswith("resources[1].name: 'mail' is also the name of resources[0]")


def test_a_name_listed_twice_in_after_is_refused(tmp_path: Path) -> None:
    (problem,) = problems(
        tmp_path,
        "  - {type: systemd, name: store, units: [srv-mail.mount]}\n"
        "  - {type: systemd, units: [postfix.service], after: [store, store]}\n",
    )
    assert problem.endswith("resources[1].after[1]: 'store' is named twice")


def test_a_derived_name_two_resources_share_cannot_be_waited_for(tmp_path: Path) -> None:
    (problem,) = problems(
        tmp_path,
        "  - {type: systemd, units: [postfix.service]}\n"
        "  - {type: systemd, units: [postfix.service]}\n"
        "  - {type: vip, address: 192.0.2.25/24, interface: eth0,\n"
        '     after: ["systemd postfix.service"]}\n',
    )
    assert problem.endswith(
        "resources[2].after[0]: 'systemd postfix.service' names resources[0] and resources[1]: "
        "give them each a name: to tell them apart"
    )


def test_a_cycle_is_refused_and_spelled_out(tmp_path: Path) -> None:
    (problem,) = problems(
        tmp_path,
        "  - {type: systemd, name: a, units: [a.service], after: [b]}\n"
        "  - {type: systemd, name: b, units: [b.service], after: [a]}\n",
    )
    assert problem.endswith(
        "resources[0].after: a cycle: a waits for b (after:), b waits for a (after:)"
    )


def test_a_cycle_through_the_list_order_says_so(tmp_path: Path) -> None:
    # b has no after:, so it waits for the resource listed before it: a.
    (problem,) = problems(
        tmp_path,
        "  - {type: systemd, name: a, units: [a.service], after: [b]}\n"
        "  - {type: systemd, name: b, units: [b.service]}\n",
    )
    assert problem.endswith(
        "a cycle: a waits for b (after:), b waits for a (listed before it; it has no after:)"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("after: store", "resources[1].after: expected a list of resource names, got 'store'"),
        ("after: [1]", "resources[1].after[0]: expected a resource's name, got 1"),
        ("name: 'my store'", "resources[1].name: expected letters, digits, '_', '.' or '-', "),
    ],
)
def test_malformed_name_and_after_are_refused(tmp_path: Path, line: str, expected: str) -> None:
    (problem,) = problems(
        tmp_path,
        "  - {type: systemd, name: store, units: [srv-mail.mount]}\n"
        f"  - {{type: systemd, units: [postfix.service], {line}}}\n",
    )
    assert expected in problem


def test_check_exits_2_on_an_order_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path, "  - {type: systemd, name: postfix, units: [p.service], after: [store]}\n"
    )
    code, text = check_report(path)
    assert code == 2
    assert f"{path}: resources[0].after[0]: no resource named 'store'" in text


def test_check_shows_the_order_the_file_makes(tmp_path: Path) -> None:
    notes = load_config(write(tmp_path, MAIL)).notes  # what --check prints as notes
    assert (
        "resources: start order: store + vip then postfix + dovecot "
        "(each as soon as what it is after is up); stopped the other way round"
    ) in notes
