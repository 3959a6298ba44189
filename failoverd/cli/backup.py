"""`failoverctl backup FILE` and `failoverctl restore FILE`: the cluster's persistent
znodes, for when ZooKeeper loses its data (docs/operations.md, "Backup and restore").

What a backup holds: the breadcrumb `active`, the operator's `control` and the
`history/` entries, each as the exact bytes stored. Not `lock` and not `members/`:
they are ephemeral, owned by live sessions, and restoring them would forge a lease.

What a restore may do, and why it is careful:

* It refuses while any daemon is connected (a member status or the lock exists)
  unless `--force`: a restore is for a cluster whose daemons are stopped.
* It never replaces a breadcrumb with a lower epoch than the one there, and never
  while a lock exists (a live active's own breadcrumb is the truth). The check is
  atomic: the breadcrumb is written in one transaction that also creates (and
  deletes) the lock, which fails if any daemon holds it.
* It restores only the breadcrumb's epoch, never the node it names: the backup may
  be older than later takeovers, and the last active (perhaps still serving) may be
  another node. What it writes is an epoch floor (Breadcrumb.floor: names nobody,
  `clean` null): "previous active unknown, every epoch so far <= N", so the next
  active fences every peer and takes an epoch above N, exactly as over the missing
  or unreadable breadcrumb it replaces. Releases that cannot decode the floor read
  it as unreadable, which also fences every peer.
* It never turns maintenance off, and drops pending switchover/failover requests
  (they were meant for a moment that has passed).
* It writes nothing unless every znode in the file decodes as the daemons decode
  it, with epochs below the ceiling (validate_backup), and the breadcrumb's epoch
  is not far above what ZooKeeper holds (_check_floor): a hostile or damaged file
  is refused whole, exit 2, naming the part.
* History entries are appended in their old order (as new sequential znodes, so the
  entries written after the restore sort after them), skipping entries already there:
  running restore twice adds nothing.

Epochs: the restored floor and history put the epoch floor back where it was;
the fence markers the nodes publish (formats.py, MemberStatus.fence_epoch) keep it
above every fenced epoch even without a backup.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import replace
from typing import Any

import click

from failoverd import __version__
from failoverd.cli.common import (
    CALL_TIMEOUT,
    Refused,
    command_config,
    operator_identity,
    zk_session,
)
from failoverd.cli.exits import USAGE
from failoverd.cli.terminal import printable
from failoverd.durable import write_atomically
from failoverd.zk.admin import AdminCoordinator
from failoverd.zk.errors import WriteConflict
from failoverd.zk.znodes import (
    EPOCH_CEILING,
    EPOCH_FLOOR_SLACK,
    Breadcrumb,
    Control,
    HistoryEntry,
    ZnodeError,
    now_iso,
)

KIND = "failoverd-backup"
BACKUP_VERSION = 1
_ENTRY_NAME = re.compile(r"entry-[0-9]{10}")


class BackupError(ValueError):
    """The backup file is unreadable or belongs to another cluster."""


class RestoreRefused(RuntimeError):
    """Restoring now would be unsafe (daemons connected, lock held)."""


def _pack(data: bytes) -> dict[str, str]:
    # Our znodes are UTF-8 JSON and stay readable in the file; anything else (a
    # garbled znode is kept as it was) goes in base64.
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _unpack(item: Any, where: str) -> bytes:
    if isinstance(item, dict) and isinstance(item.get("text"), str):
        return str(item["text"]).encode("utf-8")
    if isinstance(item, dict) and isinstance(item.get("base64"), str):
        try:
            return base64.b64decode(item["base64"], validate=True)
        except ValueError:  # binascii.Error
            raise BackupError(f"{where}: base64 that does not decode") from None
    raise BackupError(f"{where}: expected {{text: ...}} or {{base64: ...}}")


def take_backup(coord: AdminCoordinator, timeout: float) -> dict[str, Any]:
    """The cluster's persistent znodes as one JSON-able object."""
    out: dict[str, Any] = {
        "kind": KIND,
        "v": BACKUP_VERSION,
        "cluster": coord.config.cluster,
        "path": coord.root,
        "taken_at": now_iso(),
        "taken_by": coord.node,
        "failoverd": __version__,
    }
    znodes = coord.read_persistent(timeout)
    if znodes is None:
        raise BackupError(f"{coord.root} does not exist: nothing to back up")
    out["active"] = None if znodes.active is None else _pack(znodes.active)
    out["control"] = None if znodes.control is None else _pack(znodes.control)
    out["history"] = [{"name": name, **_pack(data)} for name, data in znodes.history]
    return out


def write_backup_file(path: str, backup: dict[str, Any]) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one.

    root writes it, often into a directory others can write, so the temp file is
    made by mkstemp (an unpredictable name, O_EXCL: a symlink planted there is never
    followed) beside the target (the rename stays in one filesystem) with mode 0600
    (the backup shows the cluster's control and history), then fsynced and renamed.
    """
    text = json.dumps(backup, indent=1, sort_keys=True) + "\n"
    write_atomically(os.path.abspath(path), text.encode())


def read_backup_file(path: str, cluster: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise BackupError(f"{path}: cannot read: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BackupError(f"{path}: not a failoverd backup (not JSON: {e})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise BackupError(f"{path}: not a failoverd backup")
    if data.get("v") != BACKUP_VERSION:
        raise BackupError(f"{path}: unknown backup version {data.get('v')!r}")
    if data.get("cluster") != cluster:
        raise BackupError(
            f"{path}: a backup of cluster {data.get('cluster')!r}, not of {cluster!r}"
        )
    if not isinstance(data.get("history"), list):
        raise BackupError(f"{path}: history: expected a list")
    try:
        validate_backup(data)
    except BackupError as e:
        raise BackupError(f"{path}: {e}") from None
    return data


def validate_backup(backup: dict[str, Any]) -> None:
    """Every znode a restore would write, decoded as strictly as the daemons read
    them, before anything is written: a restore that wrote garbage would give the
    daemons an unreadable znode, and one with an epoch at the ceiling (the decoders
    accept up to 2^53) would leave no epoch for the next takeover. The backup's
    breadcrumb matters only for its epoch (the floor), but a file whose breadcrumb
    is garbage is not to be trusted for the rest either. BackupError names the part."""
    if backup.get("active") is not None:
        crumb = _decoded(Breadcrumb.decode, backup["active"], "active (the breadcrumb)")
        _below_ceiling(crumb.epoch, "active (the breadcrumb)")
    if backup.get("control") is not None:
        _decoded(Control.decode, backup["control"], "control")
    for i, item in enumerate(backup["history"]):
        name = item.get("name") if isinstance(item, dict) else None
        # The name only when it is one of ours: the file's text goes to a terminal.
        where = f"history[{i}]" + (f" ({name})" if _ENTRY_NAME.fullmatch(str(name)) else "")
        entry = _decoded(HistoryEntry.decode, item, where)
        _below_ceiling(entry.epoch, where)


def _decoded(decode: Any, item: Any, where: str) -> Any:
    raw = _unpack(item, where)
    try:
        return decode(raw)
    except ZnodeError as e:
        raise BackupError(f"{where}: not what failoverd writes ({e}); nothing restored") from None


def _below_ceiling(epoch: int | None, where: str) -> None:
    if epoch is not None and epoch >= EPOCH_CEILING:
        raise BackupError(
            f"{where}: epoch {epoch} is at or above the ceiling {EPOCH_CEILING}: no "
            "takeover counts this high, a made-up epoch; nothing restored"
        )


def restore_backup(
    coord: AdminCoordinator, backup: dict[str, Any], force: bool, timeout: float
) -> list[str]:
    """Put a backup's znodes back (module docstring: what it will and will not do).
    Returns one line per thing done or deliberately not done."""
    validate_backup(backup)  # before anything is written
    _check_floor(coord, backup, timeout)
    said: list[str] = []
    # A restore follows a loss: a missing tree gets no "nobody was active" crumb.
    coord.ensure_tree(timeout, lost_if_missing=True)
    members, locked = coord.connected_members_and_lock(timeout)
    if (members or locked) and not force:
        who = ", ".join(sorted(members)) or "a daemon holds the lock"
        raise RestoreRefused(
            f"refused: daemons are connected ({who}); stop failoverd on every node "
            "first, or use --force"
        )
    said.append(_restore_breadcrumb(coord, backup, locked, timeout))
    said.append(_restore_control(coord, backup, timeout))
    said.append(_restore_history(coord, backup, timeout))
    return said


def _restore_breadcrumb(
    coord: AdminCoordinator, backup: dict[str, Any], locked: bool, timeout: float
) -> str:
    if backup.get("active") is None:
        return "breadcrumb: none in the backup; left as it is"
    saved = Breadcrumb.decode(_unpack(backup["active"], "active"))  # validated
    if locked:
        return "breadcrumb: left as it is: a daemon holds the lock, its breadcrumb is the truth"
    raw, version = coord.read_breadcrumb_bytes(timeout)
    if raw is not None:
        try:
            now = Breadcrumb.decode(raw)
        except ZnodeError:
            # An unreadable breadcrumb means "fence every peer"; a restored one would
            # narrow that to one node, and we cannot tell which is true.
            return "breadcrumb: left as it is: the existing one is unreadable (fences every peer)"
        if now.epoch >= saved.epoch:
            return (
                f"breadcrumb: kept the existing one (epoch {now.epoch} >= the backup's "
                f"{saved.epoch}): epochs never go backwards"
            )
    # Only the epoch floor, never the node: the backup may predate later takeovers,
    # and the node it names may not be the last active (which may still be serving).
    # What is there now is missing or older than the backup, so it was lost or
    # recreated: "previous active unknown" is the truth, and the floor keeps it.
    try:
        reached = coord.restore_breadcrumb(Breadcrumb.floor(saved.epoch), version, timeout)
    except WriteConflict as e:
        raise RestoreRefused(
            f"breadcrumb not restored: {e.error} (a daemon took the lock or "
            "changed the breadcrumb meanwhile); nothing else was changed"
        ) from None
    said = (
        f"breadcrumb: restored the epoch floor {saved.epoch}, not who was active (the "
        f"backup's {_who(saved)} may predate later takeovers): the next active fences "
        f"every peer and takes an epoch above {saved.epoch}"
    )
    if reached < saved.epoch:
        said += (
            f"; a daemon took the lock before the breadcrumb's data version reached "
            f"{saved.epoch} (it is {reached}): a release that cannot read the floor "
            "may take a lower epoch"
        )
    return said


def _check_floor(coord: AdminCoordinator, backup: dict[str, Any], timeout: float) -> None:
    """Refuse a backup's epoch far above what ZooKeeper holds (EPOCH_FLOOR_SLACK), as
    the daemons do not follow such a floor: restored, it would be one (and raising
    the breadcrumb's data version to it, a thousand writes a transaction, would
    not end; a made-up 2^53-1 ran ZooKeeper out of memory). After a loss ZooKeeper
    holds 0, and a million takeovers is no real cluster's count."""
    if backup.get("active") is None:
        return
    saved = Breadcrumb.decode(_unpack(backup["active"], "active"))  # validated
    raw, version = coord.read_breadcrumb_bytes(timeout)
    try:
        held = max(Breadcrumb.decode(raw).epoch if raw is not None else 0, version or 0)
    except ZnodeError:
        held = version or 0
    if saved.epoch > held + EPOCH_FLOOR_SLACK:
        raise BackupError(
            f"active (the breadcrumb): epoch {saved.epoch} is more than {EPOCH_FLOOR_SLACK} "
            f"above what ZooKeeper holds ({held}): no cluster takes over that often, a "
            "made-up epoch; nothing restored"
        )


def _who(crumb: Breadcrumb) -> str:
    if crumb.previous_unknown:
        return f"epoch floor {crumb.epoch}"
    if crumb.node is None:
        return "fresh cluster's breadcrumb"
    return f"{crumb.node} at epoch {crumb.epoch}"


def _restore_control(coord: AdminCoordinator, backup: dict[str, Any], timeout: float) -> str:
    if backup.get("control") is None:
        return "control: none in the backup; left as it is"
    saved = Control.decode(_unpack(backup["control"], "control"))  # validated
    control, version = coord.read_control(timeout)
    if control.maintenance or not saved.maintenance:
        return f"control: maintenance {'on' if control.maintenance else 'off'}, left as it is"
    coord.write_control(replace(control, maintenance=True), version, timeout)
    return "control: maintenance turned on, as in the backup (turn it off when ready)"


def _restore_history(coord: AdminCoordinator, backup: dict[str, Any], timeout: float) -> str:
    # Unpacked one by one as they are written, as the file is read.
    entries = (_unpack(item, f"history[{i}]") for i, item in enumerate(backup["history"]))
    added = coord.restore_history(entries, timeout)
    return f"history: {added} entries restored, {len(backup['history']) - added} already there"


# -- failoverctl backup / restore (added to the group in failoverctl.py) ----------------


class _BadFile(click.ClickException):
    exit_code = USAGE  # a usage/config error: the file is not a backup of this cluster


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def backup_command(ctx: click.Context, file: str) -> None:
    """Save the cluster's persistent znodes (breadcrumb, control, history) to FILE."""
    config = command_config(ctx)
    credential, _ = operator_identity(ctx)  # reading: an operator's credential will do
    with zk_session(config, credential) as coord:
        try:
            data = take_backup(coord, CALL_TIMEOUT)
        except BackupError as e:
            raise Refused(str(e)) from None
    try:
        write_backup_file(file, data)
    except OSError as e:
        raise Refused(f"{file}: cannot write: {e.strerror or e}") from None
    crumb = _describe(data.get("active"))
    click.echo(
        printable(
            f"backup of {data['path']} written to {file}: {crumb}, "
            f"{len(data['history'])} history entries"
        )
    )


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="restore even while daemons are connected")
@click.pass_context
def restore_command(ctx: click.Context, file: str, force: bool) -> None:
    """Put FILE's znodes back. Of the breadcrumb only its epoch, as a floor (previous
    active unknown: the next active fences every peer), and never a lower epoch than
    the one there. Writes the breadcrumb and history, so it needs the nodes' own
    credential (zookeeper.auth), which an operator's --credential does not replace."""
    config = command_config(ctx)
    try:
        data = read_backup_file(file, config.cluster)
    except BackupError as e:
        raise _BadFile(str(e)) from None
    with zk_session(config) as coord:
        try:
            for line in restore_backup(coord, data, force, CALL_TIMEOUT):
                click.echo(printable(line))
        except BackupError as e:
            raise _BadFile(f"{file}: {e}") from None
        except RestoreRefused as e:
            raise Refused(str(e)) from None


def _describe(item: Any) -> str:
    if item is None:
        return "no breadcrumb"
    try:
        crumb = Breadcrumb.decode(_unpack(item, "active"))
    except (ZnodeError, BackupError):
        return "an unreadable breadcrumb (kept as it was)"
    if crumb.previous_unknown:
        return f"breadcrumb: previous active unknown, epoch floor {crumb.epoch}"
    return f"breadcrumb {crumb.node or 'nobody'} at epoch {crumb.epoch}"
