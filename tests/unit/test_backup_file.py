"""`failoverctl backup FILE` writes the cluster's persistent znodes; root runs it,
often into a directory others can write (/tmp, an operator's home). The file must
land only at FILE, through a temp name nobody can predict, readable by root alone.

Runs as root: the planted symlink belongs to nobody, as an attacker's would."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from failoverd.cli.backup import write_backup_file

NOBODY = 65534


def test_a_symlink_at_the_old_temp_name_is_not_followed_and_the_backup_is_0600(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: anyone may create entries
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    victim.chmod(0o600)
    target = shared / "cluster.backup"
    # Before the fix the temp file was f"{FILE}.tmp.{pid}": predictable, and opened
    # without O_EXCL/O_NOFOLLOW, so a planted symlink steered root's write.
    planted = Path(f"{target}.tmp.{os.getpid()}")
    planted.symlink_to(victim)
    os.lchown(planted, NOBODY, NOBODY)

    write_backup_file(str(target), {"kind": "failoverd-backup", "history": []})

    assert victim.read_text() == "root:secret\n"
    assert not target.is_symlink()
    assert json.loads(target.read_text())["kind"] == "failoverd-backup"
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)
    leftovers = {p.name for p in shared.iterdir()} - {target.name, planted.name}
    assert leftovers == set()


def test_a_backup_is_readable_by_root_alone_even_under_a_permissive_umask(
    tmp_path: Path,
) -> None:
    # The backup holds the control znode and the history (who did what, when).
    target = tmp_path / "cluster.backup"
    old = os.umask(0o022)
    try:
        write_backup_file(str(target), {"kind": "failoverd-backup", "history": []})
    finally:
        os.umask(old)
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)


def test_failoverctl_backup_over_a_world_readable_file_leaves_it_readable_by_root_alone(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The command as an operator runs it, under the usual umask 022, over an older
    backup someone copied with mode 0644: the new file is 0600 all the same (it is
    a new file renamed over the old one, never the old one rewritten)."""
    from contextlib import contextmanager

    from click.testing import CliRunner

    from failoverd.cli import backup

    backup_data: dict[str, Any] = {"kind": "failoverd-backup", "path": "/failoverd/mail"}
    backup_data.update(active=None, history=[])

    @contextmanager
    def session(*_: Any) -> Iterator[object]:
        yield object()

    monkeypatch.setattr(backup, "command_config", lambda ctx: object())
    monkeypatch.setattr(backup, "operator_identity", lambda ctx: (None, ""))
    monkeypatch.setattr(backup, "zk_session", session)
    monkeypatch.setattr(backup, "take_backup", lambda coord, timeout: backup_data)
    target = tmp_path / "cluster.backup"
    target.write_text("{}\n")
    target.chmod(0o644)
    old = os.umask(0o022)
    try:
        done = CliRunner().invoke(backup.backup_command, [str(target)])
    finally:
        os.umask(old)
    assert done.exit_code == 0, done.output
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)
    assert json.loads(target.read_text())["kind"] == "failoverd-backup"
