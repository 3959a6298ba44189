"""Exit 2, "usage or config error", from every failoverctl command: a typo on the
command line gets click's usage message, a config that does not parse names the file
and the key, and an operator config is refused by what needs a node's own config.
Never a traceback. (Auth mistakes, also exit 2, need a ZooKeeper:
tests/integration/test_cli_exit_auth.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner

from failoverd.cli.failoverctl import cli
from tests.support.ctl import backup_text, node_yaml, write

# Every command, with arguments that pass click's checks; fence-check and digest too.
COMMANDS: dict[str, list[str]] = {
    "status": ["status"],
    "history": ["history"],
    "maintenance": ["maintenance", "on"],
    "switchover": ["switchover"],
    "failover": ["failover", "--to", "mail2", "--force"],
    "fence-check": ["fence-check", "mail2"],
    "confirm-fenced": ["confirm-fenced", "mail2", "--reason", "exit-code test"],
    "fix-acl": ["fix-acl"],
    "backup": ["backup", "{tmp}/backup.json"],
    "restore": ["restore", "{tmp}/restore.json"],
}
# A typo or a bad value per command (what click itself must refuse).
TYPOS: dict[str, list[str]] = {
    "status": ["status", "--jsn"],
    "history": ["history", "--limit", "many"],
    "maintenance": ["maintenance", "maybe"],
    "switchover": ["switchover", "--too", "mail2"],
    "failover": ["failover", "--force"],  # --to is required
    "fence-check": ["fence-check"],  # NODE is required
    "confirm-fenced": ["confirm-fenced", "mail2"],  # --reason is required
    "switchover --at": ["switchover", "--at", "25:00"],  # not a time
    "switchover --cancel": ["switchover", "--cancel", "--at", "23:59"],
    "digest": ["digest", "alice", "--password-fil", "x"],
    "fix-acl": ["fix-acl", "extra"],
    "backup": ["backup"],
    "restore": ["restore", "--forse", "x"],
    "unknown command": ["stauts"],
    "unknown group option": ["--confg", "x", "status"],
}

OPERATOR_YAML = """\
cluster: mail
members: [mail1, mail2]
zookeeper:
  hosts: 127.0.0.1:2181
operator:
  credential: alice.secret
"""


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    """failoverctl points structlog at stderr for the process; other tests' logs stay."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="failoverctl")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.output


def with_tmp(args: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in args]


@pytest.mark.parametrize("command", list(TYPOS))
def test_a_typo_gets_a_usage_message_and_exit_2(command: str, tmp_path: Path) -> None:
    code, output = run("-c", str(tmp_path / "none.yaml"), *TYPOS[command])
    assert code == 2, output
    assert "Usage: failoverctl" in output and "Traceback" not in output


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_missing_config_file_is_exit_2_naming_the_file(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "failoverd.yaml"
    code, output = run("-c", str(missing), *with_tmp(COMMANDS[command], tmp_path))
    assert code == 2, output
    assert f"{missing}: cannot read: No such file or directory" in output


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_config_with_a_wrong_key_is_exit_2_naming_file_and_key(
    command: str, tmp_path: Path
) -> None:
    config = write(
        tmp_path / "failoverd.yaml",
        node_yaml("mail", "127.0.0.1:2181", None).replace("  hosts:", "  hostz:"),
    )
    write(tmp_path / "restore.json", backup_text("mail"))
    code, output = run("-c", str(config), *with_tmp(COMMANDS[command], tmp_path))
    assert code == 2, output
    assert f"{config}: zookeeper.hostz: unknown key 'hostz'; did you mean 'hosts'?" in output


@pytest.mark.parametrize("command", ["fence-check", "fix-acl", "restore"])
def test_what_needs_a_node_config_refuses_an_operator_config_with_exit_2(
    command: str, tmp_path: Path
) -> None:
    config = write(tmp_path / "failoverctl.yaml", OPERATOR_YAML)
    write(tmp_path / "alice.secret", "alice:pw\n", 0o600)
    write(tmp_path / "restore.json", backup_text("mail"))
    code, output = run("-c", str(config), *with_tmp(COMMANDS[command], tmp_path))
    assert code == 2, output
    assert f"{command} needs a node's own config" in output
    assert f"{config} is an operator config" in output


@pytest.mark.parametrize("command", ["status", "history", "maintenance", "backup"])
def test_an_operator_credential_others_can_read_is_exit_2(command: str, tmp_path: Path) -> None:
    config = write(tmp_path / "failoverctl.yaml", OPERATOR_YAML)
    write(tmp_path / "alice.secret", "alice:pw\n", 0o644)
    code, output = run("-c", str(config), *with_tmp(COMMANDS[command], tmp_path))
    assert code == 2, output
    assert f"{tmp_path / 'alice.secret'}: readable or writable by others" in output
