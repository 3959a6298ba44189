"""node.state_dir's parents: whoever can write a directory above the state dir can
rename it away and put their own in its place (a fence marker that is theirs, or
none at all), so every parent must be root-owned and not writable by group or
others, sticky or not. Runs as root: chown to nobody makes "not root-owned"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from failoverd.checks.report import check_report
from tests.support.access import state_dir_for

NOBODY = 65534


def yaml_file(tmp_path: Path, state_dir: Path) -> str:
    secret = tmp_path / "zk.secret"
    secret.write_text("failoverd:s3cret\n")
    secret.chmod(0o600)
    path = tmp_path / "failoverd.yaml"
    path.write_text(
        f"""\
cluster: mail-east
node: {{name: mail1, address: 10.0.0.11, state_dir: {state_dir}}}
peers: {{mail2: {{address: 10.0.0.12}}}}
zookeeper:
  hosts: zk1:2181
  auth: {{scheme: digest, credential_file: {secret}}}
fencing:
  - {{type: command, argv: [/bin/true, "{{node}}"]}}
"""
    )
    return str(path)


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_a_state_dir_under_a_directory_others_can_write_is_refused(
    tmp_path: Path, mode: int
) -> None:
    parent = state_dir_for(tmp_path, "spool")
    state = parent / "failoverd"
    path = yaml_file(tmp_path, state)
    assert check_report(path, machine=False)[0] == 0
    parent.chmod(mode)
    code, text = check_report(path, machine=False)
    assert code == 2, text
    assert (
        f"{path}: node.state_dir: {state}: directory {parent} has mode {mode:04o}, "
        "writable by group/others"
    ) in text


def test_a_state_dir_under_a_directory_not_owned_by_root_is_refused(tmp_path: Path) -> None:
    parent = state_dir_for(tmp_path, "spool")
    state = parent / "failoverd"
    path = yaml_file(tmp_path, state)
    assert check_report(path, machine=False)[0] == 0
    os.chown(parent.parent, NOBODY, -1)  # two levels up counts as much as one
    code, text = check_report(path, machine=False)
    assert code == 2, text
    assert (
        f"{path}: node.state_dir: {state}: directory {parent.parent} is owned by uid {NOBODY}"
    ) in text
