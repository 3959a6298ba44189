"""The record of what this node started (failoverd/resources/started.py): what
fence-self and the start-up cleanup stop besides the config file's resources."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from failoverd.config import (
    CommandResourceConfig,
    OcfResourceConfig,
    ResourceConfig,
    SystemdResourceConfig,
    VipResourceConfig,
    load_config,
)
from failoverd.resources.build import build_resources
from failoverd.resources.started import (
    RECORD_FILE,
    RecordUnreadable,
    StartedRecord,
    differences,
    identity,
    leftovers,
    stop_order,
)

CONFIG = """
cluster: mail
node: {{name: mail1, address: 10.0.0.11, state_dir: {state}}}
peers: {{mail2: {{address: 10.0.0.12}}}}
zookeeper: {{hosts: "127.0.0.1:2181", insecure: true}}
fencing: [{{type: lease-wait}}]
watchdog: {{device: /dev/watchdog}}
resources:
  - {{type: vip, address: 192.0.2.25/24, interface: eth0, arp_count: 2}}
  - {{type: ocf, agent: "heartbeat:Filesystem", params: {{device: /dev/sdb1, directory: /srv}}}}
  - {{type: systemd, units: [postfix.service, dovecot.service], timeout: 20s}}
  - type: command
    start: [/usr/local/bin/mailq-start, --fast]
    stop: [/usr/local/bin/mailq-stop]
"""


def configured(tmp_path: Path) -> tuple[ResourceConfig, ...]:
    path = tmp_path / "failoverd.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state"))
    return load_config(str(path)).resources


def vip(address: str) -> VipResourceConfig:
    return VipResourceConfig(address, "eth0")


def unit(*units: str, timeout: float = 30.0) -> SystemdResourceConfig:
    return SystemdResourceConfig(units, timeout)


def test_every_kind_of_resource_from_yaml_round_trips(tmp_path: Path) -> None:
    resources = configured(tmp_path)
    assert [type(c) for c in resources] == [
        VipResourceConfig,
        OcfResourceConfig,
        SystemdResourceConfig,
        CommandResourceConfig,
    ]
    record = StartedRecord(tmp_path / "state")
    assert record.read() is None  # no record: nothing started
    record.write(resources, epoch=7)
    assert record.read() == resources
    data = json.loads(record.path.read_text())
    assert data["v"] == 1 and data["epoch"] == 7
    assert data["resources"][2] == {
        "units": ["postfix.service", "dovecot.service"],
        "timeout": 20.0,
        "type": "systemd",
    }


def test_the_record_is_written_atomically_with_mode_0600(tmp_path: Path) -> None:
    record = StartedRecord(tmp_path / "state")
    record.write([unit("postfix.service")], epoch=1)
    assert stat.S_IMODE(os.stat(record.path).st_mode) == 0o600
    assert sorted(p.name for p in record.state_dir.iterdir()) == [RECORD_FILE]
    record.clear()
    assert record.read() is None
    record.clear()  # clearing twice is fine


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00garbage",
        b'{"v": 1, "resources": [{"ty',
        b'{"v": 2, "resources": []}',
        b'{"v": 1}',
        b'{"v": 1, "resources": [{"type": "floppy"}]}',
        b'{"v": 1, "resources": [{"type": "systemd", "units": "postfix", "timeout": 30}]}',
        b'{"v": 1, "resources": [{"type": "systemd", "units": ["a"]}]}',  # a key missing
        b'{"v": 1, "resources": [{"type": "systemd", "units": ["a"], "timeout": 1, "x": 1}]}',
        b'{"v": 1, "resources": [{"type": "vip", "address": "not-an-ip", "interface": "eth0",'
        b' "timeout": 5, "arp_count": 3, "arp_interval": 1}]}',
        b'{"v": 1, "resources": [{"type": ["systemd"]}]}',
        b"[1, 2]",
    ],
)
def test_a_corrupt_record_is_an_error_never_no_record(tmp_path: Path, raw: bytes) -> None:
    record = StartedRecord(tmp_path)
    record.path.write_bytes(raw)
    with pytest.raises(RecordUnreadable, match=RECORD_FILE):
        record.read()
    with pytest.raises(RecordUnreadable):
        leftovers(record, [], [])
    with pytest.raises(RecordUnreadable):  # a takeover does not write over it
        record.add([unit("postfix.service")], epoch=2)
    assert record.path.read_bytes() == raw


def test_a_symlink_in_place_of_the_record_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text('{"v": 1, "resources": []}')
    (tmp_path / RECORD_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RecordUnreadable):
        StartedRecord(tmp_path).read()


def test_union_stops_the_recorded_in_reverse_start_order_then_the_files_own() -> None:
    # Started: the VIP, then postfix on it. Edited since: a new VIP, and dovecot.
    recorded = [vip("192.0.2.25/24"), unit("postfix.service")]
    now = [vip("192.0.2.26/24"), unit("postfix.service", timeout=60.0), unit("dovecot.service")]
    order = stop_order(recorded, now)
    # stop_all stops the last first: postfix (the file's timeout), the old VIP, then
    # what only the file names, in reverse: dovecot, the new VIP.
    assert list(reversed(order)) == [
        unit("postfix.service", timeout=60.0),
        vip("192.0.2.25/24"),
        unit("dovecot.service"),
        vip("192.0.2.26/24"),
    ]
    assert stop_order([], now) == now
    assert stop_order(now, now) == now
    assert differences(recorded, now) == (
        ["vip 192.0.2.25/24 on eth0"],
        ["vip 192.0.2.26/24 on eth0", "systemd dovecot.service"],
    )
    assert differences(now, now) == ([], [])


def test_a_takeover_keeps_what_an_uncleared_record_names_ahead_of_its_own(
    tmp_path: Path,
) -> None:
    record = StartedRecord(tmp_path)
    record.write([vip("192.0.2.25/24"), unit("postfix.service")], epoch=3)
    merged = record.add([unit("postfix.service"), unit("dovecot.service")], epoch=4)
    assert merged == (
        vip("192.0.2.25/24"),
        unit("postfix.service"),
        unit("dovecot.service"),
    )
    assert record.read() == merged


def test_leftovers_reuse_the_configs_resources_and_build_the_recorded_ones(
    tmp_path: Path,
) -> None:
    now = (unit("postfix.service"), vip("192.0.2.26/24"))
    built = build_resources(now)
    record = StartedRecord(tmp_path / "state")
    assert leftovers(record, now, built) == built  # nothing recorded: the config's own
    record.write([vip("192.0.2.25/24"), now[0]], epoch=1)
    found = leftovers(record, now, built)
    assert [r.name for r in reversed(found)] == [
        "systemd postfix.service",
        "vip 192.0.2.25/24 on eth0",
        "vip 192.0.2.26/24 on eth0",
    ]
    # Wrapped to stop in the list order (a resource only the record names), reused.
    assert found[-1].resource is built[0] and found[0].resource is built[1]  # type: ignore[attr-defined]


def test_a_record_keeps_names_and_after_and_reads_one_written_before_they_existed(
    tmp_path: Path,
) -> None:
    record = StartedRecord(tmp_path / "state")
    named = SystemdResourceConfig(("postfix.service",), name="postfix", after=("store",))
    record.write([named, unit("dovecot.service")], epoch=3)
    assert record.read() == (named, unit("dovecot.service"))
    # What a daemon without `name:` and `after:` wrote: still readable, not "unknown".
    old = {"units": ["postfix.service"], "timeout": 30.0, "type": "systemd"}
    record.path.write_text(json.dumps({"v": 1, "epoch": 2, "resources": [old]}))
    assert record.read() == (unit("postfix.service"),)
    # Renamed or reordered in the file: still the same resource.
    assert identity(named) == identity(unit("postfix.service"))
