"""What each znode holds (DESIGN.md §3), as JSON with a schema version.

Decoding is strict: anything that is not exactly what we wrote raises ZnodeError,
and callers treat that as the *unsafe* case (an unreadable breadcrumb means
"previous active unknown: fence every peer"), never as "nothing there".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1
ROLES = ("init", "standby", "fencing", "promoting", "active", "demoting", "stopped")


class ZnodeError(ValueError):
    """A znode's content is not something this version of failoverd wrote."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(obj: Any) -> bytes:
    body = {"v": SCHEMA_VERSION, **asdict(obj)}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _load(raw: bytes | None, what: str) -> dict[str, Any]:
    if raw is None or raw == b"":
        raise ZnodeError(f"{what}: empty")
    try:
        data = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ZnodeError(f"{what}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise ZnodeError(f"{what}: not a JSON object")
    if data.get("v") != SCHEMA_VERSION:
        raise ZnodeError(f"{what}: unknown schema version {data.get('v')!r}")
    return data


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = data.get(key)
    # bool is an int in Python; an epoch of `true` is garbage.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise ZnodeError(f"{what}: field {key!r} is {value!r}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


@dataclass(frozen=True)
class LockData:
    """Content of the ephemeral `lock` znode; ephemeralOwner in its stat is authoritative."""

    node: str
    session: str  # hex session id, for humans

    @classmethod
    def decode(cls, raw: bytes | None) -> LockData:
        d = _load(raw, "lock")
        return cls(_field(d, "node", str, "lock"), _field(d, "session", str, "lock"))


@dataclass(frozen=True)
class Breadcrumb:
    """The persistent `active` znode: who was active last, under which epoch, and
    whether it handed over cleanly. node is None only in a fresh cluster's initial
    breadcrumb (nobody has ever been active)."""

    node: str | None
    epoch: int
    since: str
    clean: bool

    @classmethod
    def decode(cls, raw: bytes | None) -> Breadcrumb:
        d = _load(raw, "active")
        epoch = _field(d, "epoch", int, "active")
        if epoch < 0:
            raise ZnodeError(f"active: negative epoch {epoch}")
        return cls(
            node=_field(d, "node", (str, type(None)), "active"),
            epoch=epoch,
            since=_field(d, "since", str, "active"),
            clean=_field(d, "clean", bool, "active"),
        )


@dataclass(frozen=True)
class MemberStatus:
    """Ephemeral `members/<node>`: what a daemon reports about itself."""

    node: str
    role: str
    healthy: bool
    epoch: int | None
    version: str
    address: str
    maintenance: bool
    reason: str
    since: str
    priority: int = 0  # lower is preferred (node.priority)
    # Fence readiness (failoverd/readiness.py): per fencing method, whether its last
    # probe toward every peer worked. Absent (older daemons, no probe yet) = {}.
    fence_ready: dict[str, bool] = field(default_factory=dict, hash=False)

    @classmethod
    def decode(cls, raw: bytes | None) -> MemberStatus:
        d = _load(raw, "member")
        role = _field(d, "role", str, "member")
        if role not in ROLES:
            raise ZnodeError(f"member: unknown role {role!r}")
        return cls(
            node=_field(d, "node", str, "member"),
            role=role,
            healthy=_field(d, "healthy", bool, "member"),
            epoch=_field(d, "epoch", (int, type(None)), "member"),
            version=_field(d, "version", str, "member"),
            address=_field(d, "address", str, "member"),
            maintenance=_field(d, "maintenance", bool, "member"),
            reason=_field(d, "reason", str, "member"),
            since=_field(d, "since", str, "member"),
            priority=_field(d, "priority", int, "member"),
            fence_ready=_fence_ready(d.get("fence_ready", {})),
        )


def _fence_ready(value: Any) -> dict[str, bool]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, bool) for k, v in value.items()
    ):
        raise ZnodeError(f"member: field 'fence_ready' is {value!r}")
    return dict(value)


@dataclass(frozen=True)
class Request:
    """An operator's switchover or forced failover, written by failoverctl.

    `to` None means "any healthy standby". Deadlines are not stored as wall-clock
    times: each daemon measures `timeout` from when it first saw the request id."""

    id: str
    to: str | None
    timeout: float
    requested_by: str
    requested_at: str

    @classmethod
    def decode_dict(cls, d: Any, what: str) -> Request:
        if not isinstance(d, dict):
            raise ZnodeError(f"{what}: not an object")
        timeout = _field(d, "timeout", (int, float), what)
        return cls(
            id=_field(d, "id", str, what),
            to=_field(d, "to", (str, type(None)), what),
            timeout=float(timeout),
            requested_by=_field(d, "requested_by", str, what),
            requested_at=_field(d, "requested_at", str, what),
        )


@dataclass(frozen=True)
class Control:
    """The persistent `control` znode: operator intent."""

    maintenance: bool = False
    switchover: Request | None = None
    failover: Request | None = None

    @classmethod
    def decode(cls, raw: bytes | None) -> Control:
        d = _load(raw, "control")
        sw, fo = d.get("switchover"), d.get("failover")
        return cls(
            maintenance=_field(d, "maintenance", bool, "control"),
            switchover=None if sw is None else Request.decode_dict(sw, "control.switchover"),
            failover=None if fo is None else Request.decode_dict(fo, "control.failover"),
        )


# An unreadable control znode freezes automatic transitions: a garbled operator
# intent must not be read as "no maintenance, go ahead".
UNREADABLE_CONTROL = Control(maintenance=True)


@dataclass(frozen=True)
class HistoryEntry:
    """One `history/entry-NNNNNNNNNN` record of the audit trail."""

    time: str
    node: str
    event: str
    epoch: int | None
    reason: str

    @classmethod
    def decode(cls, raw: bytes | None) -> HistoryEntry:
        d = _load(raw, "history")
        return cls(
            time=_field(d, "time", str, "history"),
            node=_field(d, "node", str, "history"),
            event=_field(d, "event", str, "history"),
            epoch=_field(d, "epoch", (int, type(None)), "history"),
            reason=_field(d, "reason", str, "history"),
        )
