"""Values `--check` must refuse with a clear `FILE: key: message` (exit 2) instead of
passing them on to fail later, elsewhere: a priority peers would not accept, a
duration too long to be a number, a peer address ssh would read as an option."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from failoverd.checks.report import check_report
from failoverd.config import SshFencerConfig
from failoverd.config.model import PRIORITY_MAX
from failoverd.fencing.base import FenceTarget
from failoverd.fencing.probes import probe
from failoverd.zk.znodes import MAX_PRIORITY, MemberStatus, ZnodeError, encode
from tests.support.access import state_dir_for

LONG = "9" * 400
HUGE = "9" * 5000  # beyond Python's 4300-digit int/str conversion limit


def check(
    tmp_path: Path, node: str = "", peer: str = "10.0.0.12", zk: str = "", tail: str = ""
) -> tuple[int, str]:
    secret = tmp_path / "zk.secret"
    secret.write_text("failoverd:s3cret\n")
    secret.chmod(0o600)
    path = tmp_path / "failoverd.yaml"
    path.write_text(
        f"""\
cluster: mail-east
node: {{name: mail1, address: 10.0.0.11, state_dir: {state_dir_for(tmp_path, "mail1")}{node}}}
peers: {{mail2: {{address: "{peer}"}}}}
zookeeper:
  hosts: zk1:2181
  auth: {{scheme: digest, credential_file: {secret}}}
{zk}fencing:
  - {{type: command, argv: [/bin/true, "{{node}}"]}}
{tail}"""
    )
    return check_report(str(path), machine=False)


def test_a_priority_peers_would_reject_is_refused(tmp_path: Path) -> None:
    # What a member publishes, its peers decode; a priority the decoder refuses
    # makes this member's whole status unreadable to them.
    assert PRIORITY_MAX == MAX_PRIORITY == 1_000_000
    with pytest.raises(ZnodeError, match="priority 2000000 is out of range"):
        MemberStatus.decode(encode(_member(2_000_000)))
    assert MemberStatus.decode(encode(_member(1_000_000))).priority == 1_000_000
    code, text = check(tmp_path, node=", priority: 2000000")
    assert code == 2, text
    assert (
        f"{tmp_path}/failoverd.yaml: node.priority: expected an integer between 0 and 1000000, "
        "got 2000000"
    ) in text
    assert check(tmp_path, node=", priority: 1000000")[0] == 0


@pytest.mark.parametrize(
    ("key", "yaml_value"),
    [
        ("zookeeper.session_timeout", LONG),
        ("zookeeper.session_timeout", f"{LONG}s"),
        ("zookeeper.session_timeout", HUGE),
        ("switchover.timeout", f"{LONG}ms"),
        ("flap.window", HUGE),
    ],
)
def test_a_duration_of_hundreds_of_digits_is_a_clear_error(
    tmp_path: Path, key: str, yaml_value: str
) -> None:
    section, name = key.split(".")
    if section == "zookeeper":
        code, text = check(tmp_path, zk=f"  {name}: {yaml_value}\n")
    else:
        code, text = check(tmp_path, tail=f"{section}: {{{name}: {yaml_value}}}\n")
    assert code == 2, text
    assert text.startswith(f"{tmp_path}/failoverd.yaml: {key}: "), text
    assert "Traceback" not in text and len(text) < 600, text


def test_an_address_that_starts_with_a_dash_is_refused(tmp_path: Path) -> None:
    code, text = check(tmp_path, peer="-oProxyCommand=touch /tmp/owned")
    assert code == 2, text
    assert f"{tmp_path}/failoverd.yaml: peers.mail2.address: must not start with '-'" in text


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client")
@pytest.mark.parametrize("address", ["-V", "-oProxyCommand=touch {mark}"])
def test_the_ssh_probe_never_reads_an_address_as_an_option(tmp_path: Path, address: str) -> None:
    # The config refuses such an address; the probe must not depend on that. Read
    # as an option, `-V` makes ssh print its version and exit 0: a fence path
    # reported ready toward a peer nobody reached.
    mark = tmp_path / "owned"
    key, known = tmp_path / "fence_key", tmp_path / "known_hosts"
    key.write_text("x")
    known.write_text("")
    cfg = SshFencerConfig(user="root", key_file=str(key), known_hosts=str(known), timeout=5.0)
    res = probe(cfg, FenceTarget("mail2", address.format(mark=mark)), {})
    assert not res.ok, res.reason
    assert not mark.exists(), "ssh ran the ProxyCommand an address smuggled in"


def _member(priority: int) -> MemberStatus:
    return MemberStatus("mail2", "standby", True, None, "1", "a", False, "", "t", priority)
