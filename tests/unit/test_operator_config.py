"""An operator's own failoverctl config, read from YAML text as an operator writes
it, and where failoverctl looks for it when --config is not given."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from failoverd.cli.common import DEFAULT_CONFIG, config_path
from failoverd.cli.identity import login_name, operator_name
from failoverd.config import Config, ConfigError, OperatorConfig
from failoverd.config.operator import cluster_view, load_failoverctl_config, user_config_path
from tests.support.ctl import node_yaml, write

EXAMPLE = """\
cluster: mail
members: [mail1, mail2]
zookeeper:
  hosts: zk1:2281,zk2:2281
  root: /clusters
  auth: {scheme: sasl}
  session_timeout: 5s
operator:
  credential: ~/zk-credential
"""


def load(tmp_path: Path, text: str) -> Config | OperatorConfig:
    return load_failoverctl_config(str(write(tmp_path / "failoverctl.yaml", text)))


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    return e.value.problems


def test_an_operator_config_is_told_apart_by_its_operator_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    op = load(tmp_path, EXAMPLE)
    assert isinstance(op, OperatorConfig)
    assert op.members == ("mail1", "mail2") and op.cluster == "mail"
    assert op.credential == str(tmp_path / "home" / "zk-credential")
    assert op.zookeeper.auth is not None and op.zookeeper.auth.scheme == "sasl"
    assert op.zookeeper.auth.credential == ""  # never the nodes' secret
    view = cluster_view(op)
    assert view.member_names == ("mail1", "mail2")
    assert view.cluster_path == "/clusters/mail"
    assert view.zookeeper.session_timeout == 5.0
    node = load(tmp_path, node_yaml("mail", "zk1:2181", None))
    assert isinstance(node, Config)


def test_a_relative_credential_path_is_beside_the_config(tmp_path: Path) -> None:
    op = load(tmp_path, EXAMPLE.replace("~/zk-credential", "alice.secret"))
    assert isinstance(op, OperatorConfig)
    assert op.credential == str(tmp_path / "alice.secret")


@pytest.mark.parametrize(
    "change, problem",
    [
        (
            ("auth: {scheme: sasl}", "auth: {scheme: sasl, credential_file: /etc/x}"),
            "zookeeper.auth.credential_file: is the nodes' own secret",
        ),
        (("members: [mail1, mail2]", "members: [mail1]"), "members: expected a list"),
        (("members: [mail1, mail2]", "members: [mail1, mail1]"), "members[1]: 'mail1' is listed"),
        (("  hosts: zk1:2281,zk2:2281\n", ""), "zookeeper.hosts: is required"),
        (("  credential: ~/zk-credential", "  credentail: x"), "operator.credentail: unknown"),
        (("cluster: mail", "cluster: mail\nfencing: []"), "fencing: unknown key 'fencing'"),
        (("scheme: sasl", "scheme: kerberos"), "zookeeper.auth.scheme: expected one of"),
    ],
)
def test_operator_config_problems_name_the_file_and_the_key(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    found = problems(tmp_path, EXAMPLE.replace(*change))
    path = tmp_path / "failoverctl.yaml"
    assert any(p.startswith(f"{path}: {problem}") for p in found), found


def test_a_credential_is_required_unless_the_tree_is_open(tmp_path: Path) -> None:
    no_credential = EXAMPLE.replace("operator:\n  credential: ~/zk-credential\n", "operator: {}\n")
    assert any("operator.credential: is required" in p for p in problems(tmp_path, no_credential))
    insecure = no_credential.replace("  auth: {scheme: sasl}\n", "  insecure: true\n")
    op = load(tmp_path, insecure)
    assert isinstance(op, OperatorConfig) and op.credential is None


def test_the_users_own_config_is_the_default_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path(None) == DEFAULT_CONFIG  # not written yet
    mine = write(tmp_path / "xdg" / "failoverd" / "failoverctl.yaml", EXAMPLE)
    assert config_path(None) == str(mine)
    assert config_path("/elsewhere.yaml") == "/elsewhere.yaml"  # --config wins


def test_without_home_or_xdg_the_passwd_entry_gives_the_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    home = pwd.getpwuid(os.getuid()).pw_dir
    assert user_config_path() == os.path.join(home, ".config", "failoverd", "failoverctl.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # ignored, as the spec says
    assert user_config_path() == os.path.join(home, ".config", "failoverd", "failoverctl.yaml")


def test_who_falls_back_to_the_real_uids_login_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SUDO_USER", "USER", "LOGNAME"):
        monkeypatch.delenv(var, raising=False)
    me = pwd.getpwuid(os.getuid()).pw_name
    assert login_name() == me
    assert f"(sudo user {me}, claimed)" in operator_name(None)
    monkeypatch.setenv("LOGNAME", "carol")
    assert login_name() == "carol"
