"""What this node started: the record that stopping goes by, besides the config file.

Why: every config change but `log:` needs a restart, so between an operator's edit
(a new VIP, unit name or mount point) and that restart the file and the running
daemon disagree. Whatever stops this node's resources without being the daemon
that started them — fence-self, run by a peer over ssh, and the start-up cleanup of
a daemon restarted after a crash — reads the file as it is *now*. Stopping only
that list leaves the old services running while a peer promotes: two nodes serving.

So, under the fence lock and before the first resource start of a takeover, the
daemon writes ``state_dir/started-resources.json``: the config of every resource it
is about to start (enough to rebuild each one), in start order. fence-self and the
start-up cleanup stop the union of that record and the current config
(`stop_order` says in which order, and why).

The record is cleared only after a clean stop of everything it and the config
name (the daemon's demotion, its start-up cleanup, fence-self), and never while an
abandoned start may still complete (abandoned.py). A record that does not exist
therefore means this node has started nothing since. A record that cannot be read
is the unsafe case: fence-self fails, so the fencer falls through to a stronger
method, and the daemon stays out of contention (RecordUnreadable).

The caller holds the fence lock (failoverd/fencing/marker.py) around `add` and
`clear`: a fence then never interleaves with a takeover's record and starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from failoverd.config.model import (
    CommandResourceConfig,
    OcfResourceConfig,
    ResourceConfig,
    SystemdResourceConfig,
    VipResourceConfig,
)
from failoverd.durable import sync_dir, write_atomically
from failoverd.observe import fastlog
from failoverd.resources.base import Resource
from failoverd.resources.build import build_resource, build_resources

log = fastlog.get_logger(__name__)  # no structlog in fence-self

RECORD_FILE = "started-resources.json"
VERSION = 1
MAX_BYTES = 1 << 20  # a record is a few hundred bytes per resource; more is garbage

KINDS: dict[str, type[Any]] = {
    "vip": VipResourceConfig,
    "systemd": SystemdResourceConfig,
    "command": CommandResourceConfig,
    "ocf": OcfResourceConfig,
}
# What the settings say about how a resource runs, not which one it is: a record
# and a file that differ only in these name the same resource.
# The order (`name:`, `after:`) and the fast path (`kill`) are how-settings too:
# renaming a resource, letting it start in parallel or killing it differently does
# not make it another one.
_HOW = {
    "timeout": 0.0, "arp_count": 0, "arp_interval": 0.0, "name": "", "after": None, "kill": None,
}  # fmt: skip
# Keys added to a kind after the first version of the record, with the value their
# absence means. A record without them is an older daemon's and still read; one
# whose value is that default leaves them out, so that an older fence-self (after a
# downgrade) still reads what a newer daemon recorded.
_ADDED = {"name": "", "after": None, "kill": None}


class RecordUnreadable(ValueError):
    """The record exists but cannot be trusted: what this node started is unknown."""


class StartedRecord:
    """``state_dir/started-resources.json``; `add` and `clear` under the fence lock."""

    def __init__(self, state_dir: str | Path):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / RECORD_FILE

    def read(self) -> tuple[ResourceConfig, ...] | None:
        """The recorded resources in start order; None when there is no record.
        RecordUnreadable for anything else (O_NOFOLLOW, bounded: a planted symlink
        or a huge file is unreadable, never followed or slurped)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise RecordUnreadable(f"{self.path}: {e}") from e
        if len(raw) > MAX_BYTES:
            raise RecordUnreadable(f"{self.path}: larger than {MAX_BYTES} bytes")
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("v") != VERSION:
                raise ValueError(f"not a version {VERSION} record")
            items = data.get("resources")
            if not isinstance(items, list):
                raise ValueError("no resources list")
            recorded = tuple(from_data(item) for item in items)
            build_resources(recorded)  # e.g. a VIP address that is no address
        except (ValueError, TypeError, KeyError, RecursionError) as e:
            raise RecordUnreadable(f"{self.path}: {e}") from e
        return recorded

    def add(self, resources: Sequence[ResourceConfig], epoch: int) -> tuple[ResourceConfig, ...]:
        """Record `resources` before any of them starts; returns what is recorded.

        A record still there (one not cleared after its stop) is kept: its
        resources stay recorded ahead of the new ones, as started before them.
        RecordUnreadable for a record that cannot be read (the takeover must not go
        on without knowing what runs), OSError when it cannot be written."""
        old = self.read() or ()
        keys = {identity(c) for c in resources}
        merged = (*(c for c in old if identity(c) not in keys), *resources)
        self.write(merged, epoch)
        return merged

    def write(self, resources: Iterable[ResourceConfig], epoch: int | None) -> None:
        """Atomic and durable, mode 0600: tmp file + fsync + rename + fsync of the dir."""
        entries = [to_data(c) for c in resources]
        record = {
            "v": VERSION,
            "epoch": epoch,
            "time": datetime.now(UTC).isoformat(),
            "resources": entries,
        }
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(self.path, (json.dumps(record) + "\n").encode())
        log.info("resources_recorded", epoch=epoch, resources=len(entries))

    def clear(self) -> None:
        """Everything the record and the config name was stopped cleanly. OSError
        if it cannot be removed (harmless: stopping then covers the old ones too)."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        self._sync_dir()
        log.info("resources_record_cleared")

    def _sync_dir(self) -> None:
        sync_dir(self.state_dir)


def stop_order(
    recorded: Sequence[ResourceConfig], configured: Sequence[ResourceConfig]
) -> list[ResourceConfig]:
    """The union to stop, in the order stop_all expects (it stops the last first).

    The recorded ones are stopped first, in the reverse of the order they were
    started: that is what actually runs, and a service must stop before the VIP
    it listens on or the mount it writes to. The ones only the file names come
    after them: this node never started them (stopping them is a no-op unless
    someone else did), so nothing that runs depends on them going first. Where
    both name the same resource the file's settings are used (its timeout is the
    operator's latest word), at the record's place."""
    current = {identity(c): c for c in configured}
    seen: set[ResourceConfig] = set()
    recorded_part: list[ResourceConfig] = []
    for c in recorded:
        key = identity(c)
        if key not in seen:
            seen.add(key)
            recorded_part.append(current.get(key, c))
    file_only = [c for c in configured if identity(c) not in seen]
    return [*file_only, *recorded_part]


def leftovers(
    record: StartedRecord, configured: Sequence[ResourceConfig], built: Sequence[Resource]
) -> list[Resource]:
    """What may run on this node, for stop_all: the union of the record and the
    config (`built` are the config's resources as objects, reused). Raises
    RecordUnreadable."""
    recorded = record.read() or ()
    if not recorded:
        return list(built)
    objects = {identity(c): r for c, r in zip(configured, built, strict=True)}
    # One the file no longer names is named by its place in the record.
    keys = {identity(c): f"{RECORD_FILE}[{i}]" for i, c in enumerate(recorded)}
    order = stop_order(recorded, configured)
    union = [objects.get(identity(c)) or build_resource(c, keys[identity(c)]) for c in order]
    only_recorded = [c for c in recorded if identity(c) not in objects]
    if not only_recorded:
        return union
    # A resource only the record names (the file dropped it, renamed it or changed
    # what it is) has no name any `after:` in the file points at: a plan by `after:`
    # would stop it at once, alongside the services that may still write to it (the
    # old store, unmounted under a running postfix). The record's own `after:` does
    # not help either, since the file's entries of the same resources replace it. So
    # such a union stops one at a time, the last listed first: the record's start
    # order reversed, the order failoverd always had (resources/order.py).
    log.warning(
        "resource_order_ignored",
        reason="the record names resources the file does not: "
        + ", ".join(describe(c) for c in only_recorded),
        using="the list order",
    )
    return [InListOrder(r) for r in union]


class InListOrder:
    """A resource stopped in the list order: its `after:` hidden from stop_all's plan,
    everything else its own. A wrapper, so that the daemon's own objects (which it
    also starts, by their `after:`) are left as they are."""

    after = None

    def __init__(self, resource: Resource):
        self.resource = resource
        self.name = resource.name
        self.key = resource.key
        self.timeout = resource.timeout

    def start(self, env: Mapping[str, str]) -> None:
        self.resource.start(env)

    def stop(self, env: Mapping[str, str]) -> None:
        self.resource.stop(env)

    def is_running(self, env: Mapping[str, str]) -> bool | None:
        return self.resource.is_running(env)

    def __getattr__(self, attr: str) -> Any:
        # The optional parts (`kill`, `prepare`) are there exactly when the resource has them.
        return getattr(self.resource, attr)


def differences(
    recorded: Sequence[ResourceConfig], configured: Sequence[ResourceConfig]
) -> tuple[list[str], list[str]]:
    """(only recorded, only configured), each resource described for a person."""
    mine, theirs = {identity(c) for c in recorded}, {identity(c) for c in configured}
    return (
        [describe(c) for c in recorded if identity(c) not in theirs],
        [describe(c) for c in configured if identity(c) not in mine],
    )


def identity(cfg: ResourceConfig) -> ResourceConfig:
    """`cfg` with its how-settings (timeout, ARP) blanked: which resource it is."""
    how = {k: v for k, v in _HOW.items() if hasattr(cfg, k)}
    return dataclasses.replace(cfg, **how)  # type: ignore[arg-type]


def describe(cfg: ResourceConfig) -> str:
    if isinstance(cfg, VipResourceConfig):
        text = f"vip {cfg.address} on {cfg.interface}"
    elif isinstance(cfg, SystemdResourceConfig):
        text = "systemd " + " ".join(cfg.units)
    elif isinstance(cfg, CommandResourceConfig):
        text = "command " + " ".join(cfg.start)
    else:
        text = f"ocf {cfg.agent} " + " ".join(f"{k}={v}" for k, v in cfg.params)
    return text if len(text) <= 200 else text[:197] + "..."


# -- the resources as data ----------------------------------------------------------


def to_data(cfg: ResourceConfig) -> dict[str, Any]:
    """A resource's config as JSON data (tuples become lists). The keys added later are
    left out at their defaults: such a record stays what an older daemon wrote and reads."""
    data = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _ADDED or v != _ADDED[k]}
    return json.loads(json.dumps(data))  # type: ignore[no-any-return]


def from_data(data: object) -> ResourceConfig:
    """The config `to_data` wrote; ValueError for anything that is not exactly that."""
    if not isinstance(data, dict):
        raise ValueError(f"a resource is not an object: {data!r:.80}")
    cls = KINDS.get(data.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown resource type {data.get('type')!r:.40}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    data = {**{k: v for k, v in _ADDED.items() if k in fields}, **data}
    if set(data) != set(fields):
        raise ValueError(f"{data['type']}: keys {sorted(data)} are not {sorted(fields)}")
    values = {
        name: _value(str(f.type), data[name], f"{data['type']}.{name}")
        for name, f in fields.items()
        if name != "type"
    }
    return cls(**values)  # type: ignore[no-any-return]


def _value(kind: str, v: object, at: str) -> object:
    if kind == "str" and isinstance(v, str):
        return v
    if kind == "int" and isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if kind == "float" and isinstance(v, int | float) and not isinstance(v, bool):
        if math.isfinite(v) and 0 <= v <= 86400:
            return float(v)
    if kind == "tuple[str, ...] | None" and v is None:
        return None
    if kind.startswith("tuple[str, ...]") and _strings(v):
        return tuple(v)  # type: ignore[arg-type]
    if kind == "tuple[tuple[str, str], ...]" and isinstance(v, list):
        if all(isinstance(p, list) and len(p) == 2 and _strings(p) for p in v):
            return tuple((str(p[0]), str(p[1])) for p in v)
    raise ValueError(f"{at}: {v!r:.80} is not a {kind}")


def _strings(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)
