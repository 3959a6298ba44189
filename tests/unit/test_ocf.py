"""The `ocf` resource type: OCF agents run with OCF_RESKEY_* and their exit codes mapped.

Real agents run as real processes: a small shell agent in a private OCF_ROOT for
the exit codes, and Debian's ocf:heartbeat:Filesystem (resource-agents) for the
meta-data validation of `--check`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from failoverd.checks.report import check_report
from failoverd.config import ConfigError, OcfResourceConfig, load_config
from failoverd.resources.base import ResourceError
from failoverd.resources.build import build_resource
from failoverd.resources.ocf import OcfResource, parse_meta_data

FILESYSTEM = Path("/usr/lib/ocf/resource.d/heartbeat/Filesystem")

# A test agent: its state is a file; `fail` in OCF_RESKEY_mode makes start exit 1.
AGENT = """#!/bin/sh
state="$OCF_RESKEY_state"
echo "$1 $OCF_RESKEY_state $OCF_RESOURCE_INSTANCE $OCF_ROOT" >> "$state.calls"
case "$1" in
  meta-data) cat <<'XML'
<?xml version="1.0"?>
<resource-agent name="lab"><parameters>
<parameter name="state" required="1"><content type="string"/></parameter>
<parameter name="mode"><content type="string"/></parameter>
</parameters></resource-agent>
XML
  exit 0;;
  start) [ "$OCF_RESKEY_mode" = fail ] && exit 1; touch "$state"; exit 0;;
  stop) [ "$OCF_RESKEY_mode" = stuck ] && exit 1
        [ -e "$state" ] || exit 7; rm -f "$state"; exit 0;;
  monitor) [ "$OCF_RESKEY_mode" = broken ] && exit 1; [ -e "$state" ] && exit 0; exit 7;;
esac
exit 3
"""


@pytest.fixture
def ocf_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    agent = tmp_path / "ocf" / "resource.d" / "lab" / "Thing"
    agent.parent.mkdir(parents=True)
    agent.write_text(AGENT)
    agent.chmod(agent.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("OCF_ROOT", str(tmp_path / "ocf"))
    return tmp_path / "ocf"


def thing(tmp_path: Path, mode: str = "") -> OcfResource:
    params = (("state", str(tmp_path / "state")),) + ((("mode", mode),) if mode else ())
    res = build_resource(OcfResourceConfig("lab:Thing", params, timeout=5.0))
    assert isinstance(res, OcfResource)
    return res


def test_start_monitor_stop_map_ocf_exit_codes(ocf_root: Path, tmp_path: Path) -> None:
    res = thing(tmp_path)
    assert res.is_running({}) is False  # 7: not running
    res.start({"FAILOVERD_EPOCH": "3"})
    assert res.is_running({}) is True  # 0: running
    res.stop({})
    assert res.is_running({}) is False
    res.stop({})  # 7 on stop: already stopped is stopped
    calls = (tmp_path / "state.calls").read_text().splitlines()
    assert calls[1] == f"start {tmp_path / 'state'} failoverd-Thing-0 {ocf_root}"


def test_failed_start_and_stop_raise_with_the_ocf_meaning(ocf_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ResourceError, match=r"OCF exit 1 \(generic error\)"):
        thing(tmp_path, "fail").start({})
    stuck = thing(tmp_path, "stuck")
    (tmp_path / "state").touch()
    with pytest.raises(ResourceError, match=r"^resource\.stop \(ocf lab:Thing\): OCF exit 1"):
        stuck.stop({})
    assert thing(tmp_path, "broken").is_running({}) is None  # failed: neither running nor not


def test_meta_data_parameters_and_required_flags() -> None:
    xml = '<resource-agent><parameters><parameter name="a" required="1"/><parameter name="b"/>'
    xml += "</parameters></resource-agent>"
    assert [(p.name, p.required) for p in parse_meta_data(xml)] == [("a", True), ("b", False)]


def write(tmp_path: Path, resources: list[dict]) -> str:
    cfg = {
        "cluster": "c",
        "node": {"name": "a", "address": "127.0.0.1"},
        "peers": {"b": {"address": "127.0.0.2"}},
        "zookeeper": {"hosts": "127.0.0.1:2181", "session_timeout": "3s", "insecure": True},
        "resources": resources,
        "fencing": [{"type": "command", "argv": ["/bin/true"]}],
    }
    path = tmp_path / "failoverd.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.skipif(not os.access(FILESYSTEM, os.X_OK), reason="resource-agents not installed")
def test_check_validates_filesystem_params_against_its_meta_data(tmp_path: Path) -> None:
    fs = {"type": "ocf", "agent": "heartbeat:Filesystem", "timeout": "30s"}
    good = {**fs, "params": {"device": "/dev/sdb1", "directory": "/srv/mail", "fstype": "ext4"}}
    path = write(tmp_path, [good])
    assert check_report(path, machine=False)[0] == 0
    [res] = load_config(path).resources
    assert res == OcfResourceConfig(
        "heartbeat:Filesystem",
        (("device", "/dev/sdb1"), ("directory", "/srv/mail"), ("fstype", "ext4")),
        30.0,
    )

    bad = [
        {**fs, "params": {"device": "/dev/sdb1", "directory": "/srv/mail"}},
        {**fs, "params": {**good["params"], "optoins": "noatime"}},
        {"type": "ocf", "agent": "heartbeat:NoSuchAgent", "params": {}},
        {"type": "ocf", "agent": "Filesystem"},
    ]
    code, out = check_report(write(tmp_path, bad), machine=False)
    assert code == 2
    assert f"{path}: resources[0].params.fstype: required by heartbeat:Filesystem" in out
    assert (
        "resources[1].params.optoins: heartbeat:Filesystem has no parameter 'optoins'; "
        "did you mean 'options'?" in out
    )
    assert "resources[2].agent: no executable OCF agent" in out
    assert "resources[3].agent: expected PROVIDER:TYPE" in out


@pytest.mark.skipif(not os.access(FILESYSTEM, os.X_OK), reason="resource-agents not installed")
def test_postfix_dovecot_recipe_passes_check_with_resources_in_order(tmp_path: Path) -> None:
    from tests.support.access import state_dir
    from tests.unit.test_config import secret

    # As installed: its credential file and state dir exist (stand-ins here); the
    # host checks (scripts installed, ...) are test_host_checks' business.
    recipe = Path(__file__).resolve().parents[2] / "deploy/examples/postfix-dovecot/failoverd.yaml"
    text = recipe.read_text().replace("/etc/failoverd/zk.secret", secret(tmp_path))
    text = text.replace("/var/lib/failoverd", str(state_dir(tmp_path.name, "recipe")))
    path = tmp_path / "failoverd.yaml"
    path.write_text(text)
    code, out = check_report(str(path), machine=False)
    assert code == 0, out
    kinds = [r.type for r in load_config(str(path)).resources]
    assert kinds == ["ocf", "systemd", "systemd", "vip"]  # store, Postfix, Dovecot, VIP


def test_daemon_refuses_to_start_on_what_check_says_of_an_agent(
    ocf_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from failoverd.main import main

    monkeypatch.chdir(tmp_path)  # without `state` the agent logs its calls to ./.calls
    path = write(tmp_path, [{"type": "ocf", "agent": "lab:Thing", "params": {"mode": "x"}}])
    assert main(["-c", path]) == 2
    message = (
        f"{path}: resources[0].params.state: required by lab:Thing (its meta-data) but missing"
    )
    assert capsys.readouterr().err.strip() == message
    assert check_report(path, machine=False) == (2, message)


@pytest.mark.skipif(not os.access(FILESYSTEM, os.X_OK), reason="resource-agents not installed")
def test_check_reports_an_agents_problems_in_the_same_pass_as_the_files_others(
    tmp_path: Path,
) -> None:
    # The parser asks the agent through the check it is handed, so an operator fixing
    # a file sees every problem at once, not the OCF ones only after the rest are fixed.
    path = tmp_path / "failoverd.yaml"
    path.write_text(
        """\
cluster: mail
node: {name: a, address: 127.0.0.1}
peers: {b: {address: 127.0.0.2}}
zookeeper: {hosts: "127.0.0.1:2181", session_timeout: 3s, insecure: true}
resources:
  - type: ocf
    agent: heartbeat:Filesystem
    params: {device: /dev/sdb1, directory: /srv/mail}
fencing:
  - {type: command, argv: [/bin/true], timout: 10s}
"""
    )
    code, out = check_report(str(path), machine=False)
    assert code == 2
    assert f"{path}: resources[0].params.fstype: required by heartbeat:Filesystem" in out
    assert f"{path}: fencing[0].timout: unknown key" in out
    # The parser alone runs no agent: what failoverctl and fence-self load.
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert not any("fstype" in p for p in e.value.problems)
