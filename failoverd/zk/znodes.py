"""What each znode holds, as JSON with a schema version.

Decoding is strict: anything that is not exactly what we wrote raises ZnodeError,
and callers treat that as the *unsafe* case (an unreadable breadcrumb means
"previous active unknown: fence every peer"), never as "nothing there".
Which format numbers are read and written, and why unknown fields are ignored, is
the rule of failoverd/zk/formats.py (rolling upgrades).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from failoverd.zk.formats import ASSUMED_FORMATS, READ_FORMATS, readable

SCHEMA_VERSION = 1  # the oldest format; what encode() writes unless told otherwise
ROLES = ("init", "standby", "fencing", "promoting", "active", "demoting", "stopped")


class ZnodeError(ValueError):
    """A znode's content is not something this version of failoverd wrote."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(obj: Any, version: int = SCHEMA_VERSION) -> bytes:
    """`version`: formats.write_format() of the cluster's members."""
    body = {"v": version, **asdict(obj)}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


# Limits on what a znode may hold. Whoever can write a znode must not be able to
# stop a daemon by making it decode something: every decode failure, however
# exotic, becomes ZnodeError, which callers already treat as the unsafe case.
MAX_ZNODE_BYTES = 64 * 1024  # ours are < 1 KiB; also ZooKeeper's jute.maxbuffer is 1 MiB
# Epochs stay exact in every JSON implementation (IEEE doubles) and, counted one
# per takeover, never come close.
EPOCH_LIMIT = 2**53
# No takeover takes an epoch at or above this (decision.next_epoch gives up and
# alerts instead), and nothing restores or fences one. Counting one per takeover, a
# cluster never gets here (a takeover a millisecond for 140,000 years): an epoch
# this high was made up (a fence key, a backup file). Half the readers' range stays
# above it as headroom, so whatever follows from a made-up epoch (the fencer's +1,
# the floors taken from it) never reaches EPOCH_LIMIT, which no reader decodes.
EPOCH_CEILING = 2**52
# How far a node-local floor (a fence marker, a member's remembered seen_epoch) may
# be above the highest epoch ZooKeeper shows (breadcrumb, history, members' epochs)
# and still count as a floor. Those floors carry epochs past a loss of ZooKeeper's
# data, when ZooKeeper shows 0: a cluster that took over a million times (every day
# for 2,700 years) is not a real case. Further above, the floor names an epoch no
# takeover ever used (someone ran fence-self with a made-up epoch): an anomaly,
# reported and not followed. fence-self refuses an epoch this far above what its
# node has seen, for the same reason.
EPOCH_FLOOR_SLACK = 1_000_000
# An operator request lives at most this long; a bigger value is clamped, so a
# stuck request cannot freeze the cluster for days.
MAX_REQUEST_TIMEOUT = 3600.0
# failoverctl writes uuid4 ids; anything else is not ours.
REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A member's name is a configured node name (config.reading.NAME_PATTERN) and a znode name.
NODE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A member's node.priority; config/model.py PRIORITY_MAX is the same number, so a
# file --check accepts never yields a status its peers refuse.
MAX_PRIORITY = 1_000_000
_MAX_DIGITS = 20  # an int with more digits is garbage (and Python's 4300-digit limit raises)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"non-finite number {text[:20]}")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise ValueError(f"integer with {len(text)} digits")
    return int(text)


def _load(raw: bytes | None, what: str) -> dict[str, Any]:
    if raw is None or raw == b"":
        raise ZnodeError(f"{what}: empty")
    if len(raw) > MAX_ZNODE_BYTES:
        raise ZnodeError(f"{what}: {len(raw)} bytes, more than {MAX_ZNODE_BYTES}")
    try:
        data = json.loads(
            raw.decode("utf-8"),
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    # ValueError covers JSONDecodeError, UnicodeDecodeError and our limits;
    # RecursionError is deep nesting. Anything else is also not something we wrote.
    except (ValueError, RecursionError, MemoryError, TypeError) as e:
        raise ZnodeError(f"{what}: not JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(data, dict):
        raise ZnodeError(f"{what}: not a JSON object")
    if not readable(data.get("v")):
        raise ZnodeError(f"{what}: unknown schema version {str(data.get('v'))[:40]!r}")
    return data


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = data.get(key)
    # bool is an int in Python; an epoch of `true` is garbage.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise ZnodeError(f"{what}: field {key!r} is {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 60 else text[:60] + "..."


def _epoch(data: dict[str, Any], key: str, what: str, optional: bool = False) -> int | None:
    value = _field(data, key, (int, type(None)) if optional else int, what)
    if value is not None and not 0 <= value < EPOCH_LIMIT:
        raise ZnodeError(f"{what}: {key} {value} is outside 0..2^53")
    return value


def _name(data: dict[str, Any], key: str, what: str, optional: bool = False) -> Any:
    value = _field(data, key, (str, type(None)) if optional else str, what)
    if value is not None and not NODE_NAME.fullmatch(value):
        raise ZnodeError(f"{what}: {key} {_short(value)} is not a node name")
    return value


def _text(data: dict[str, Any], key: str, what: str, default: str | None = None) -> Any:
    """A free-text field; absent is `default` when one is given (fields added later)."""
    if default is not None and data.get(key) is None:
        return default
    return _field(data, key, str, what)


def _flag(data: dict[str, Any], key: str, what: str, default: bool) -> bool:
    """A boolean field added later: absent is `default`, anything else but a bool is garbage."""
    if key not in data:
        return default
    return bool(_field(data, key, bool, what))


UNKNOWN_ELIGIBILITY = "unknown: this member's failoverd does not publish whether it could take over"


def _priority(d: dict[str, Any]) -> int:
    value = _field(d, "priority", int, "member")
    if not 0 <= value <= MAX_PRIORITY:
        raise ZnodeError(f"member: priority {value} is out of range")
    return int(value)


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


@dataclass(frozen=True)
class LocalFloor:
    """An epoch floor a member keeps on its own disk and publishes in its status:
    its fence marker (`fence_epoch`) or the highest epoch it remembers (`seen_epoch`)."""

    node: str
    what: str  # "fence_epoch" or "seen_epoch"
    epoch: int


@dataclass(frozen=True)
class KnownEpochs:
    """The epochs a new active must go above (decision.plan_epoch): the highest in
    ZooKeeper itself (history, members' epochs), and the members' local floors,
    which count only while they are within EPOCH_FLOOR_SLACK of ZooKeeper's."""

    zookeeper: int = 0
    local: tuple[LocalFloor, ...] = ()


@dataclass(frozen=True)
class LockData:
    """Content of the ephemeral `lock` znode; ephemeralOwner in its stat is authoritative."""

    node: str
    session: str  # hex session id, for humans

    @classmethod
    def decode(cls, raw: bytes | None) -> LockData:
        d = _load(raw, "lock")
        return cls(_name(d, "node", "lock"), _field(d, "session", str, "lock"))


@dataclass(frozen=True)
class Breadcrumb:
    """The persistent `active` znode: who was active last, under which epoch, and
    whether it handed over cleanly.

    node is None in two forms only:
    * a fresh cluster's initial breadcrumb, clean: nobody has ever been active;
    * an *epoch floor* (clean None), which `failoverctl restore` writes: who was
      active last is unknown, and every epoch used so far is <= `epoch`. A backup
      may predate later takeovers, so the node it names may not be the last
      active; naming it would narrow "fence every peer" to one node.
    Releases before the floor form cannot decode a `clean` of null: for them it is
    an unreadable breadcrumb, which also means "fence every peer" (formats.py)."""

    node: str | None
    epoch: int
    since: str
    clean: bool | None

    @classmethod
    def floor(cls, epoch: int, since: str | None = None) -> Breadcrumb:
        """Previous active unknown; every epoch so far is <= `epoch`."""
        return cls(None, epoch, since or now_iso(), None)

    @property
    def previous_unknown(self) -> bool:
        """Nobody can say who was active last, so the next active fences every peer.
        True for an epoch floor, and for a not-clean breadcrumb naming nobody (what
        restore wrote before the floor form, from a fresh cluster's backup): only the
        clean initial breadcrumb says that nobody has ever been active."""
        return self.node is None and self.clean is not True

    @classmethod
    def decode(cls, raw: bytes | None) -> Breadcrumb:
        d = _load(raw, "active")
        node = _name(d, "node", "active", optional=True)
        # `clean` may be null only in an epoch floor: a breadcrumb naming a node says
        # whether it handed over; and the key must be there (strict: what we wrote).
        if "clean" not in d:
            raise ZnodeError("active: field 'clean' is missing")
        clean_kind = bool if node is not None else (bool, type(None))
        return cls(
            node=node,
            epoch=_epoch(d, "epoch", "active"),  # type: ignore[arg-type]
            since=_field(d, "since", str, "active"),
            clean=_field(d, "clean", clean_kind, "active"),
        )


@dataclass(frozen=True)
class WatchdogStatus:
    """What a member says about its watchdog device: the part of its status that
    `lease-wait` on a peer trusts (failoverd/fencing/lease_wait.py). `armed`: the
    device is open, took the configured timeout and takes pets; `timeout`: the
    seconds the device itself reports (WDIOC_GETTIMEOUT), None while unknown; `why`:
    why it is not armed, for humans ("" when it is)."""

    armed: bool
    timeout: float | None
    why: str = ""


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
    reason: str  # why its role last changed
    since: str  # when its role and reason were last set (node/publish.py)
    priority: int = 0  # lower is preferred (node.priority)
    # Fence readiness (failoverd/fencing/readiness.py): per fencing method, whether its last
    # probe toward every peer worked. Absent (older daemons, no probe yet) = {}.
    fence_ready: dict[str, bool] = field(default_factory=dict, hash=False)
    # The same per peer, in three words (failoverd/fencing/base.py): "OK" (its check
    # ran and passed), "UNVERIFIED" (nothing could be checked), "FAIL". `failoverctl
    # status` counts a standby able to fence the active only with an "OK" toward
    # it. Absent (older daemons, no probe yet) = {}.
    fence_paths: dict[str, dict[str, str]] = field(default_factory=dict, hash=False)
    # The znode formats this member reads (formats.py); releases before the rule
    # publish none and read only format 1.
    formats: tuple[int, ...] = READ_FORMATS
    # The epoch of this node's local fence marker (None: no marker): after a loss of
    # ZooKeeper's data, new epochs must still start above every fenced one.
    fence_epoch: int | None = None
    # The highest epoch this node has seen used (its own, its peers'), remembered in
    # its state dir (membership.py): the same floor for the last active's epoch.
    seen_epoch: int | None = None
    # Could it take over now, and if not why (failoverd.node.eligibility). Absent in
    # what an older failoverd wrote: unknown, which status reports as not eligible.
    eligible: bool = False
    why: str = UNKNOWN_ELIGIBILITY
    # Its watchdog device (failoverd/node/notify.py). Absent in what an older failoverd
    # wrote: unknown, which `lease-wait` treats as "nothing resets it".
    watchdog: WatchdogStatus | None = None
    # Why this node's HTTP endpoints (metrics.listen) are not served, "" while they
    # are: a load balancer's checks there reach whoever holds the port instead.
    endpoint_error: str = ""
    # The commit its failoverd was built from (failoverd.release), "" when unknown or
    # written by a release before 0.2.0: with `version`, what a rolling upgrade shows.
    commit: str = ""

    @classmethod
    def decode(cls, raw: bytes | None) -> MemberStatus:
        d = _load(raw, "member")
        role = _field(d, "role", str, "member")
        if role not in ROLES:
            raise ZnodeError(f"member: unknown role {role!r}")
        return cls(
            node=_name(d, "node", "member"),
            role=role,
            healthy=_field(d, "healthy", bool, "member"),
            epoch=_epoch(d, "epoch", "member", optional=True),
            version=_field(d, "version", str, "member"),
            address=_field(d, "address", str, "member"),
            maintenance=_field(d, "maintenance", bool, "member"),
            reason=_field(d, "reason", str, "member"),
            since=_field(d, "since", str, "member"),
            priority=_priority(d),
            fence_ready=_fence_ready(d.get("fence_ready", {})),
            fence_paths=_fence_paths(d.get("fence_paths", {})),
            formats=_formats(d.get("formats", list(ASSUMED_FORMATS))),
            fence_epoch=_epoch(d, "fence_epoch", "member", optional=True),
            seen_epoch=_epoch(d, "seen_epoch", "member", optional=True),
            eligible=_flag(d, "eligible", "member", default=False),
            why=_text(d, "why", "member", default=UNKNOWN_ELIGIBILITY),
            watchdog=_watchdog(d.get("watchdog")),
            endpoint_error=_text(d, "endpoint_error", "member", default=""),
            commit=_text(d, "commit", "member", default=""),
        )


def _fence_ready(value: Any) -> dict[str, bool]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, bool) for k, v in value.items()
    ):
        raise ZnodeError(f"member: field 'fence_ready' is {_short(value)}")
    return dict(value)


# A result is one word; any word is read (a later release may add one, which this
# release then counts as not verified), but not a paragraph.
MAX_FENCE_RESULT = 20


def _fence_paths(value: Any) -> dict[str, dict[str, str]]:
    def result_map(v: Any) -> bool:
        return isinstance(v, dict) and all(
            isinstance(m, str) and isinstance(r, str) and len(r) <= MAX_FENCE_RESULT
            for m, r in v.items()
        )

    if not isinstance(value, dict) or not all(
        isinstance(k, str) and result_map(v) for k, v in value.items()
    ):
        raise ZnodeError(f"member: field 'fence_paths' is {_short(value)}")
    return {peer: dict(results) for peer, results in value.items()}


# A device timeout is a few seconds to minutes; a day is far beyond any driver's limit.
MAX_WATCHDOG_TIMEOUT = 86400.0


def _watchdog(value: Any) -> WatchdogStatus | None:
    if value is None:
        return None
    what = "member.watchdog"
    if not isinstance(value, dict):
        raise ZnodeError(f"member: field 'watchdog' is {_short(value)}")
    timeout = _field(value, "timeout", (int, float, type(None)), what)
    if timeout is not None and not 0 < timeout <= MAX_WATCHDOG_TIMEOUT:
        raise ZnodeError(f"{what}: timeout {timeout} is out of range")
    return WatchdogStatus(
        armed=_field(value, "armed", bool, what),
        timeout=None if timeout is None else float(timeout),
        why=_text(value, "why", what, default=""),
    )


def _formats(value: Any) -> tuple[int, ...]:
    # A handful of small positive ints; anything else (or a huge list) is not ours.
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= 16
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1000 for v in value)
    ):
        raise ZnodeError(f"member: field 'formats' is {_short(value)}")
    return tuple(value)


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
    reason: str = ""  # the operator's --reason, for the history entry
    # A scheduled switchover's time (POSIX seconds, UTC), only in `control.scheduled`:
    # a request in `switchover` is always carried out at once (releases before
    # scheduling never read this field, which is why a scheduled one lives apart).
    at: float | None = None

    @classmethod
    def decode_dict(cls, d: Any, what: str) -> Request:
        if not isinstance(d, dict):
            raise ZnodeError(f"{what}: not an object")
        rid = _field(d, "id", str, what)
        if not REQUEST_ID.fullmatch(rid):
            raise ZnodeError(f"{what}: id {_short(rid)} is not a request id")
        timeout = float(_field(d, "timeout", (int, float), what))
        return cls(
            id=rid,
            to=_name(d, "to", what, optional=True),
            timeout=min(max(timeout, 0.0), MAX_REQUEST_TIMEOUT),
            requested_by=_field(d, "requested_by", str, what),
            requested_at=_field(d, "requested_at", str, what),
            reason=_text(d, "reason", what, default=""),
            at=_at(d, what),
        )

    @classmethod
    def decode_scheduled(cls, d: Any, what: str) -> Request:
        """`control.scheduled`: a request with its time. failoverctl always writes
        `at`; a schedule without one is garbage, not "at once" (nothing happens)."""
        req = cls.decode_dict(d, what)
        if req.at is None:
            raise ZnodeError(f"{what}: no at")
        return req


# The furthest ahead a switchover may be scheduled: a forgotten schedule must not
# surprise anyone a year later.
MAX_SCHEDULE_AHEAD = 7 * 86400.0


def _at(d: dict[str, Any], what: str) -> float | None:
    value = _field(d, "at", (int, float, type(None)), what) if "at" in d else None
    if value is None:
        return None
    if not 0 < value < 2**40:  # POSIX seconds; far beyond any real date is garbage
        raise ZnodeError(f"{what}: at {_short(value)} is not a time")
    return float(value)


@dataclass(frozen=True)
class FenceConfirmation:
    """An operator's word that `node` is down with its resources stopped
    (`failoverctl confirm-fenced`): the next takeover may skip fencing it, once.

    Bound to `node`'s last term: `epoch` is the epoch of the breadcrumb naming
    `node` when the operator confirmed. A later takeover moves the breadcrumb on,
    so a confirmation from an earlier incident never matches again
    (node/confirmation.py decides whether one applies)."""

    id: str
    node: str
    epoch: int
    by: str  # what failoverctl wrote; history takes the name from the request znode
    at: str
    reason: str

    @classmethod
    def decode_dict(cls, d: Any, what: str) -> FenceConfirmation:
        if not isinstance(d, dict):
            raise ZnodeError(f"{what}: not an object")
        cid = _field(d, "id", str, what)
        if not REQUEST_ID.fullmatch(cid):
            raise ZnodeError(f"{what}: id {_short(cid)} is not a request id")
        return cls(
            id=cid,
            node=_name(d, "node", what),
            epoch=_epoch(d, "epoch", what),  # type: ignore[arg-type]
            by=_field(d, "by", str, what),
            at=_field(d, "at", str, what),
            reason=_field(d, "reason", str, what),
        )


def _lenient(decode: Any, value: Any, what: str) -> Any:
    """An optional part of `control` added later, decoded on its own: garbage in it
    reads as absent (no confirmation, no scheduled switchover: nothing is skipped and
    nothing happens) instead of making all of `control` unreadable, which would
    freeze every automatic transition."""
    if value is None:
        return None
    try:
        return decode(value, what)
    except ZnodeError:
        return None


@dataclass(frozen=True)
class Control:
    """The persistent `control` znode: operator intent."""

    maintenance: bool = False
    switchover: Request | None = None
    failover: Request | None = None
    # Who last turned maintenance on or off, why and when (failoverctl maintenance
    # --reason). The daemons record the change in history: operators cannot write it.
    maintenance_by: str = ""
    maintenance_reason: str = ""
    maintenance_since: str = ""
    # A switchover the daemons carry out at `scheduled.at` (failoverctl switchover
    # --at): the active moves it into `switchover` when it is due. Releases before
    # it ignore the field, so an old active never carries one out early.
    scheduled: Request | None = None
    # The operator's word that a node is down (failoverctl confirm-fenced).
    # Releases before it ignore the field: they fence as always.
    fence_confirmed: FenceConfirmation | None = None

    @classmethod
    def decode(cls, raw: bytes | None) -> Control:
        d = _load(raw, "control")
        sw, fo = d.get("switchover"), d.get("failover")
        return cls(
            maintenance=_field(d, "maintenance", bool, "control"),
            switchover=None if sw is None else Request.decode_dict(sw, "control.switchover"),
            failover=None if fo is None else Request.decode_dict(fo, "control.failover"),
            maintenance_by=_text(d, "maintenance_by", "control", default=""),
            maintenance_reason=_text(d, "maintenance_reason", "control", default=""),
            maintenance_since=_text(d, "maintenance_since", "control", default=""),
            scheduled=_lenient(Request.decode_scheduled, d.get("scheduled"), "control.scheduled"),
            fence_confirmed=_lenient(
                FenceConfirmation.decode_dict, d.get("fence_confirmed"), "control.fence_confirmed"
            ),
        )

    def without_requests(self) -> Control:
        return replace(self, switchover=None, failover=None)


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
    by: str = ""  # the operator behind the event, when there is one

    @classmethod
    def decode(cls, raw: bytes | None) -> HistoryEntry:
        d = _load(raw, "history")
        return cls(
            time=_field(d, "time", str, "history"),
            node=_name(d, "node", "history"),
            event=_field(d, "event", str, "history"),
            epoch=_epoch(d, "epoch", "history", optional=True),
            reason=_field(d, "reason", str, "history"),
            by=_text(d, "by", "history", default=""),
        )


@dataclass(frozen=True)
class OperatorRequest:
    """One change an operator made in `control`: `kind` is maintenance_on,
    maintenance_off, switchover or failover, `ref` the change's maintenance_since
    or request id. `by` is read only from the nodes' own request znode (failoverctl
    run with the nodes' credential): the host and sudo user it ran as, a claim
    made by root on a node."""

    kind: str
    ref: str
    by: str = ""
    at: str = ""


# The changes a request znode remembers: enough for commands run in quick
# succession, whose changes a daemon may read only after the next was written.
REQUESTS_KEPT = 8


@dataclass(frozen=True)
class OperatorRequests:
    """An operator's `requests/<user>` znode: the proof of who made a change.

    Only that operator's credential (and the nodes') may write it, so its *path*
    names the operator; nothing in it is taken as the operator's name. failoverctl
    adds each change to it just before writing the change into `control`."""

    recent: tuple[OperatorRequest, ...] = ()

    def adding(self, request: OperatorRequest) -> OperatorRequests:
        return OperatorRequests((*self.recent, request)[-REQUESTS_KEPT:])

    @classmethod
    def decode(cls, raw: bytes | None) -> OperatorRequests:
        d = _load(raw, "request")
        items = _field(d, "recent", list, "request")
        out = []
        for item in items[-REQUESTS_KEPT:]:
            if not isinstance(item, dict):
                raise ZnodeError("request: an entry is not an object")
            out.append(
                OperatorRequest(
                    kind=_field(item, "kind", str, "request"),
                    ref=_field(item, "ref", str, "request"),
                    by=_text(item, "by", "request", default=""),
                    at=_text(item, "at", "request", default=""),
                )
            )
        return cls(tuple(out))
