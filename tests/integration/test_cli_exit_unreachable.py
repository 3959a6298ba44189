"""Exit 3, "ZooKeeper unreachable, the state is unknown", from every failoverctl
command that talks to ZooKeeper, and from `status --local` when the node's own
endpoint does not answer either. Unreachable = a closed port on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.access import write_credential
from tests.support.ctl import ZK_COMMANDS, args_for, backup_text, ctl, node_yaml, write
from tests.support.zookeeper import free_port


@pytest.fixture
def closed_config(tmp_path: Path) -> Path:
    """A node's config whose ZooKeeper is a port nobody listens on."""
    cred = tmp_path / "zk.secret"
    write_credential(cred)
    write(tmp_path / "restore.json", backup_text("mail"))
    hosts = f"127.0.0.1:{free_port()}"
    return write(tmp_path / "failoverd.yaml", node_yaml("mail", hosts, cred))


@pytest.mark.parametrize("command", list(ZK_COMMANDS))
def test_every_zookeeper_command_exits_3_when_zookeeper_is_unreachable(
    command: str, closed_config: Path, tmp_path: Path
) -> None:
    out = ctl("-c", str(closed_config), *args_for(command, tmp_path))
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "failoverctl: UNKNOWN: cannot reach ZooKeeper at 127.0.0.1:" in out.stderr
    assert "Traceback" not in out.stderr


def test_status_local_exits_3_with_words_when_the_endpoint_is_unreachable_too(
    closed_config: Path,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = ctl("-c", str(closed_config), "status", "--local", "--url", url)
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert f"no answer from the node's endpoint {url}/status" in out.stderr
    assert "Traceback" not in out.stderr
