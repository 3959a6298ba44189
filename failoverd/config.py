"""The node's configuration (DESIGN.md §9), parsed once into frozen dataclasses.

Durations are resolved to float seconds, unknown keys are errors (a typo must not
silently disable fencing) and every problem is reported as ``FILE: key.path: message``.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import stat
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar, cast

import yaml

# ---------------------------------------------------------------------------
# The parsed shape. Other modules depend on these names: change them with care.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeConfig:
    name: str
    address: str
    priority: int = 0
    # A node with priority p waits p * priority_delay before contending for the lease.
    priority_delay: float = 1.0
    # Where the fence marker, its lock and the daemon's pid file live.
    state_dir: str = "/var/lib/failoverd"


@dataclass(frozen=True)
class PeerConfig:
    name: str
    address: str


@dataclass(frozen=True)
class ZkAuthConfig:
    scheme: Literal["digest"]
    credential_file: str
    # "user:password", read from credential_file at load time (file must not be
    # readable by group/others).
    credential: str


@dataclass(frozen=True)
class ZkTlsConfig:
    """TLS to ZooKeeper's secureClientPort: the CA that signed the servers'
    certificates and, when the servers require client certificates, ours."""

    ca: str
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class ZooKeeperConfig:
    hosts: str
    session_timeout: float = 3.0
    root: str = "/failoverd"
    auth: ZkAuthConfig | None = None
    # Local lease = last round trip + session_timeout - lease_margin (DESIGN.md §5).
    # None in the file means session_timeout / 4; always resolved to a float here.
    lease_margin: float = 0.75
    # Running without `auth` must be asked for: an open tree lets anyone who
    # reaches ZooKeeper delete the lock or mark the breadcrumb clean.
    insecure: bool = False
    # Operators' ZooKeeper digest ids ("user:base64(sha1(user:password))", what
    # `failoverctl digest USER` prints): they may read the tree and write `control`,
    # nothing else. Only the hash is here, so this file holds no operator password.
    operators: tuple[str, ...] = ()
    tls: ZkTlsConfig | None = None


@dataclass(frozen=True)
class CheckConfig:
    type: Literal["smtp", "imap", "tcp", "command"]
    timeout: float
    host: str = "127.0.0.1"
    port: int = 0  # smtp/imap/tcp
    argv: tuple[str, ...] = ()  # command
    # "active": judged only while this node runs its resources (a standby's Postfix
    # is stopped, so its smtp check would always fail and no standby could ever be
    # eligible). "always": judged on every node, e.g. "is the mail store reachable".
    # Default: active for smtp/imap/tcp, always for command.
    scope: Literal["active", "always"] = "always"


@dataclass(frozen=True)
class HealthConfig:
    interval: float = 1.0
    rise: int = 2
    fall: int = 3
    checks: tuple[CheckConfig, ...] = ()
    # After a promotion, failures of "active"-scope checks count only once they
    # have passed once or this long has gone by (services take time to start).
    grace: float = 10.0


@dataclass(frozen=True)
class VipResourceConfig:
    address: str  # with prefix length, e.g. 192.0.2.25/24
    interface: str
    timeout: float = 5.0
    arp_count: int = 3
    arp_interval: float = 1.0
    type: Literal["vip"] = "vip"


@dataclass(frozen=True)
class SystemdResourceConfig:
    units: tuple[str, ...]
    timeout: float = 30.0
    type: Literal["systemd"] = "systemd"


@dataclass(frozen=True)
class CommandResourceConfig:
    start: tuple[str, ...]
    stop: tuple[str, ...]
    status: tuple[str, ...] | None = None
    timeout: float = 30.0
    type: Literal["command"] = "command"


@dataclass(frozen=True)
class OcfResourceConfig:
    agent: str  # PROVIDER:TYPE, e.g. heartbeat:Filesystem
    params: tuple[tuple[str, str], ...] = ()  # OCF_RESKEY_<name>=<value>, in file order
    timeout: float = 30.0
    type: Literal["ocf"] = "ocf"


ResourceConfig = (
    VipResourceConfig | SystemdResourceConfig | CommandResourceConfig | OcfResourceConfig
)


@dataclass(frozen=True)
class SshFencerConfig:
    user: str
    key_file: str
    known_hosts: str
    port: int = 22
    timeout: float = 5.0
    # Bounds the TCP connect, separately from `timeout` (the whole fence):
    # see _ssh_connect_timeout for the default.
    connect_timeout: float = 0.5
    # Fence readiness probe period (failoverd/readiness.py); see _CHECK_INTERVAL_RANGE.
    check_interval: float = 30.0
    # Ports on the target that must refuse connections after the fence. Empty in
    # the file means: the ports of this node's smtp/imap/tcp health checks.
    verify_ports: tuple[int, ...] = ()
    type: Literal["ssh"] = "ssh"


@dataclass(frozen=True)
class CommandFencerConfig:
    argv: tuple[str, ...]  # "{node}" is replaced by the target's name
    timeout: float = 20.0
    # The power fencer's status action (IPMI "power status", a PDU's outlet state),
    # run by fence readiness every check_interval; exit 0 = this method would work.
    check_argv: tuple[str, ...] | None = None
    check_interval: float = 30.0
    type: Literal["command"] = "command"


@dataclass(frozen=True)
class LeaseWaitFencerConfig:
    type: Literal["lease-wait"] = "lease-wait"


FencerConfig = SshFencerConfig | CommandFencerConfig | LeaseWaitFencerConfig


@dataclass(frozen=True)
class WatchdogConfig:
    systemd: bool = False
    device: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class SwitchoverConfig:
    timeout: float = 10.0


@dataclass(frozen=True)
class FlapConfig:
    max_failovers: int = 3
    window: float = 600.0
    backoff: float = 30.0


@dataclass(frozen=True)
class MetricsConfig:
    host: str
    port: int


@dataclass(frozen=True)
class LogConfig:
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class HookConfig:
    """A program run after a transition (failoverd.hooks): `on` lists its events."""

    on: tuple[str, ...]
    argv: tuple[str, ...]
    timeout: float = 10.0


# The events a hook may subscribe to (DESIGN.md §9).
HOOK_EVENTS = (
    "promoted", "demoted", "fenced", "fence_failed", "stop_failed", "flap_limit",
    "fence_path_lost",
)  # fmt: skip


@dataclass(frozen=True)
class Config:
    path: str
    cluster: str
    node: NodeConfig
    peers: tuple[PeerConfig, ...]
    zookeeper: ZooKeeperConfig
    health: HealthConfig = field(default_factory=HealthConfig)
    resources: tuple[ResourceConfig, ...] = ()
    fencing: tuple[FencerConfig, ...] = ()
    watchdog: WatchdogConfig | None = None
    switchover: SwitchoverConfig = field(default_factory=SwitchoverConfig)
    flap: FlapConfig = field(default_factory=FlapConfig)
    metrics: MetricsConfig | None = None
    log: LogConfig = field(default_factory=LogConfig)
    hooks: tuple[HookConfig, ...] = ()
    # Advisory findings of the timing budget (e.g. resources' stop time exceeds
    # the lease margin, so safety rests on fencing); printed by --check.
    notes: tuple[str, ...] = ()

    @property
    def cluster_path(self) -> str:
        return f"{self.zookeeper.root.rstrip('/')}/{self.cluster}"

    def peer(self, name: str) -> PeerConfig | None:
        return next((p for p in self.peers if p.name == name), None)

    @property
    def member_names(self) -> tuple[str, ...]:
        return (self.node.name, *(p.name for p in self.peers))


class ConfigError(Exception):
    """Every problem found in one file, each as 'FILE: key.path: message'."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# ---------------------------------------------------------------------------
# Reading the file. Each getter below validates one key and, on a problem,
# records it and returns a fallback, so a single pass reports every problem.
# ---------------------------------------------------------------------------

_T = TypeVar("_T")
_ABSENT = object()
# Cluster and member names become ZooKeeper node names.
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HINT = "expected a duration like 500ms, 3s, 10m or a number of seconds"
_LISTEN = re.compile(r"\[(?P<v6>[^\]]+)\]:(?P<p6>\d+)|(?P<host>[^:\[\]]+):(?P<port>\d+)")


class _Findings:
    """Problems (the file is invalid) and notes (advice for the operator) of one file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []
        self.notes: list[str] = []
        self._bad: set[str] = set()

    def problem(self, at: str, message: str) -> None:
        self._bad.add(at)
        self.problems.append(f"{self.path}: {at}: {message}")

    def note(self, at: str, message: str) -> None:
        self.notes.append(f"{at}: {message}")

    def ok(self, *keys: str) -> bool:
        """No problem at these keys or their parents (so a cross-check would not repeat it)."""
        return not any(k == b or k.startswith(b + ".") for k in keys for b in self._bad)


class _Section:
    """One mapping of the file at a key path such as ``fencing[1]``."""

    def __init__(self, found: _Findings, at: str, data: object, keys: str) -> None:
        self.found, self.at = found, at
        self.data: Mapping[Any, Any] = data if isinstance(data, Mapping) else {}
        if not isinstance(data, Mapping):
            found.problem(at, f"expected a mapping, got {data!r}")
        allowed = sorted(keys.split())
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = (
                    f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
                )
                found.problem(self.key(str(key)), f"unknown key {key!r}{hint}")

    def key(self, name: str) -> str:
        return f"{self.at}.{name}" if self.at else name

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def section(self, name: str, keys: str) -> _Section:
        value = self.data.get(name)
        return _Section(self.found, self.key(name), {} if value is None else value, keys)

    def items(self, name: str) -> list[tuple[str, object]]:
        value = self._get(name, required=False)
        if value is _ABSENT:
            return []
        if not isinstance(value, list):
            return self._wrong(name, "expected a list", value, [])
        return [(f"{self.key(name)}[{i}]", item) for i, item in enumerate(value)]

    def text(self, name: str, default: str | None = None) -> str:
        """A non-empty string; required when there is no default."""
        value = self._get(name, required=default is None)
        if value is _ABSENT:
            return default or ""
        if isinstance(value, str) and value.strip():
            return value
        return self._wrong(name, "expected a non-empty string", value, default or "")

    def name(self, name: str) -> str:
        value = self.text(name)
        if value and (not _NAME.fullmatch(value) or value in (".", "..")):
            msg = "expected letters, digits, '_', '.' or '-' (it names a ZooKeeper node)"
            return self._wrong(name, msg, value, value)
        return value

    def integer(self, name: str, default: int | None, low: int, high: int | None = None) -> int:
        value = self._get(name, required=default is None)
        if value is _ABSENT:
            return default or 0
        if _is_int(value) and value >= low and (high is None or value <= high):
            return cast(int, value)
        wanted = f"between {low} and {high}" if high is not None else f"of at least {low}"
        return self._wrong(name, f"expected an integer {wanted}", value, default or 0)

    def duration(self, name: str, default: float, zero_ok: bool = False) -> float:
        value = self._get(name, required=False)
        if value is _ABSENT:
            return default
        seconds = _seconds(value)
        if seconds is None:
            return self._wrong(name, _DURATION_HINT, value, default)
        if seconds < 0 or (seconds == 0 and not zero_ok):
            limit = "must not be negative" if zero_ok else "must be greater than 0"
            return self._wrong(name, limit, value, default)
        return seconds

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name, required=False)
        if value is _ABSENT or isinstance(value, bool):
            return default if value is _ABSENT else cast(bool, value)
        return self._wrong(name, "expected true or false", value, default)

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        value = self._get(name, required=False)
        if value is _ABSENT:
            return default
        if value in options:
            return cast(str, value)
        return self._wrong(name, f"expected one of {', '.join(options)}", value, default)

    def argv(self, name: str, required: bool = True) -> tuple[str, ...] | None:
        """A command as a list of strings; it is exec'd directly, never through a shell."""
        value = self._get(name, required=required)
        if value is _ABSENT:
            return () if required else None
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        return self._wrong(name, "expected a non-empty list of strings", value, ())

    def ports(self, name: str) -> tuple[int, ...] | None:
        value = self._get(name, required=False)
        if value is _ABSENT:
            return None
        if isinstance(value, list) and all(_is_int(v) and 1 <= v <= 65535 for v in value):
            return tuple(value)
        return self._wrong(name, "expected a list of port numbers (1-65535)", value, ())

    def _get(self, name: str, required: bool) -> Any:
        if self.has(name):
            return self.data[name]
        if required:
            self.found.problem(self.key(name), "is required")
        return _ABSENT

    def _wrong(self, name: str, expected: str, value: object, fallback: _T) -> _T:
        self.found.problem(self.key(name), f"{expected}, got {value!r}")
        return fallback


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
        return float(m[1]) * _UNIT_SECONDS[m[2] or "s"]
    return None


def _typed(
    found: _Findings, at: str, value: object, schemas: Mapping[str, str]
) -> tuple[str, _Section] | None:
    """A list item whose ``type`` key decides which other keys it may have."""
    kinds = ", ".join(schemas)
    if not isinstance(value, Mapping):
        found.problem(at, f"expected a mapping with a 'type' ({kinds}), got {value!r}")
        return None
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in schemas:
        # Still name the item's other keys that no type knows, so `{tyype: command}`
        # reads as the typo it is rather than only as a missing type.
        _Section(found, at, value, " ".join({"type", *" ".join(schemas.values()).split()}))
        found.problem(f"{at}.type", f"expected one of {kinds}, got {kind!r}")
        return None
    return kind, _Section(found, at, value, f"type {schemas[kind]}")


def _s(seconds: float) -> str:
    return f"{seconds:g}s"


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice is an error: plain YAML keeps the
    last one, and a second ``fencing:`` must not silently replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: str) -> Mapping[Any, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from e
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: not UTF-8 text: {e.reason} at byte {e.start}"]) from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{path}: {where}{e.problem or e.context}"]) from e
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: {e}"]) from e
    if data is None:
        raise ConfigError([f"{path}: the file is empty"])
    if not isinstance(data, Mapping):
        raise ConfigError([f"{path}: expected a mapping at the top level, got {data!r:.60}"])
    return data


# ---------------------------------------------------------------------------
# The sections of DESIGN.md §9.
# ---------------------------------------------------------------------------

# The keys each section and each ``type`` of list item may have.
_TOP = "cluster node peers zookeeper health resources fencing watchdog switchover flap metrics log"
_TOP += " hooks"
_NODE = "name address priority priority_delay state_dir"
_ZOOKEEPER = "hosts session_timeout root auth lease_margin insecure operators tls"
_NET_CHECK = "host port timeout scope"
_CHECKS = {
    "smtp": _NET_CHECK,
    "imap": _NET_CHECK,
    "tcp": _NET_CHECK,
    "command": "argv timeout scope",
}
# A port answers at once or the service is in trouble; a command may do real work.
_CHECK_TIMEOUT = {"smtp": 2.0, "imap": 2.0, "tcp": 2.0, "command": 5.0}
_RESOURCES = {
    "vip": "address interface timeout arp_count arp_interval",
    "systemd": "units timeout",
    "command": "start stop status timeout",
    "ocf": "agent params timeout",
}
_FENCERS = {
    "ssh": "user key_file known_hosts port timeout connect_timeout check_interval verify_ports",
    "command": "argv timeout check_argv check_interval",
    "lease-wait": "",
}


def _node(s: _Section) -> NodeConfig:
    return NodeConfig(
        name=s.name("name"),
        address=s.text("address"),
        priority=s.integer("priority", NodeConfig.priority, 0),
        priority_delay=s.duration("priority_delay", NodeConfig.priority_delay, zero_ok=True),
        state_dir=s.text("state_dir", NodeConfig.state_dir),
    )


def _peers(root: _Section, own_name: str) -> tuple[PeerConfig, ...]:
    found, raw = root.found, root.data.get("peers")
    if not isinstance(raw, Mapping) or not raw:
        found.problem(
            "peers", f"expected at least one peer like {{mail2: {{address: ...}}}}, got {raw!r}"
        )
        return ()
    peers = []
    for name, value in raw.items():
        s = _Section(found, f"peers.{name}", value, "address")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            found.problem(s.at, "a peer's name must use letters, digits, '_', '.' or '-'")
        elif name == own_name:
            found.problem(
                s.at, f"{name!r} is this node's own name (node.name); list only the others"
            )
        peers.append(PeerConfig(name=str(name), address=s.text("address")))
    return tuple(peers)


def _zookeeper(s: _Section) -> ZooKeeperConfig:
    session = s.duration("session_timeout", ZooKeeperConfig.session_timeout)
    root = s.text("root", ZooKeeperConfig.root)
    if not root.startswith("/"):
        s.found.problem(
            s.key("root"), f"expected an absolute znode path like /failoverd, got {root!r}"
        )
    auth = _zk_auth(s.section("auth", "scheme credential_file")) if s.has("auth") else None
    return ZooKeeperConfig(
        hosts=s.text("hosts"),
        session_timeout=session,
        root=root,
        auth=auth,
        # The margin must cover clock-rate drift and scheduling delay (DESIGN.md §5).
        lease_margin=s.duration("lease_margin", session / 4),
        **_zk_access(s, auth is not None),
    )


_DIGEST_ID = re.compile(r"[^:\s]{1,64}:[A-Za-z0-9+/]{27}=")


def _zk_access(s: _Section, has_auth: bool) -> dict[str, Any]:
    """zookeeper.insecure, .operators and .tls (issue 14: closed by default)."""
    insecure = s.flag("insecure", False)
    if insecure and has_auth:
        s.found.problem(s.key("insecure"), "true contradicts zookeeper.auth: drop one of them")
    operators: list[str] = []
    for at, item in s.items("operators"):
        if isinstance(item, str) and _DIGEST_ID.fullmatch(item):
            operators.append(item)
        else:
            shown = item if not isinstance(item, str) else item[:40]
            s.found.problem(
                at, f"expected a digest id user:BASE64 (failoverctl digest USER), got {shown!r}"
            )
    if operators and not has_auth:
        s.found.problem(s.key("operators"), "needs zookeeper.auth (the nodes' own identity)")
    tls = None
    if s.has("tls"):
        t = s.section("tls", "ca cert key")
        ca, cert, key = t.text("ca"), t.text("cert", "") or None, t.text("key", "") or None
        for name, path in (("ca", ca), ("cert", cert), ("key", key)):
            if path and not os.path.isfile(path):
                s.found.problem(t.key(name), f"{path} is not a file")
        if (cert is None) != (key is None):
            s.found.problem(t.key("cert" if cert is None else "key"), "cert and key go together")
        if key and os.path.isfile(key):
            _check_private(s.found, t.key("key"), key)
        tls = ZkTlsConfig(ca=ca, cert=cert, key=key)
    return {"insecure": insecure, "operators": tuple(operators), "tls": tls}


def _zk_auth(s: _Section) -> ZkAuthConfig:
    s.choice("scheme", "digest", ("digest",))
    path = s.text("credential_file")
    return ZkAuthConfig("digest", path, _read_credential(s.found, s.key("credential_file"), path))


def _read_credential(found: _Findings, at: str, path: str) -> str:
    if not path:
        return ""
    try:
        if _check_private(found, at, path):
            with open(path, encoding="utf-8") as f:
                credential = f.read().strip()
            if re.fullmatch(r"[^:\s]+:\S+", credential):
                return credential
            found.problem(at, f"{path} does not look like user:password")
    except (OSError, UnicodeDecodeError) as e:
        found.problem(at, f"cannot read {path}: {getattr(e, 'strerror', None) or e}")
    return ""


def _check_private(found: _Findings, at: str, path: str) -> bool:
    """A secret others can read is no secret; one others can write can be replaced."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        how = "readable" if mode & 0o044 else "writable"
        found.problem(at, f"{path} is {how} by others (mode {mode:04o}): chmod 600 it")
    return not mode & 0o077


def _health(s: _Section) -> HealthConfig:
    checks = []
    for at, item in s.items("checks"):
        if typed := _typed(s.found, at, item, _CHECKS):
            checks.append(_check(*typed))
    return HealthConfig(
        interval=s.duration("interval", HealthConfig.interval),
        rise=s.integer("rise", HealthConfig.rise, 1),
        fall=s.integer("fall", HealthConfig.fall, 1),
        checks=tuple(checks),
        grace=s.duration("grace", HealthConfig.grace, zero_ok=True),
    )


def _check(kind: str, s: _Section) -> CheckConfig:
    timeout = s.duration("timeout", _CHECK_TIMEOUT[kind])
    scope = cast(
        Literal["active", "always"],
        s.choice("scope", "always" if kind == "command" else "active", ("active", "always")),
    )
    if kind == "command":
        return CheckConfig("command", timeout=timeout, argv=s.argv("argv") or (), scope=scope)
    return CheckConfig(
        cast(Literal["smtp", "imap", "tcp"], kind),
        timeout=timeout,
        host=s.text("host", CheckConfig.host),
        port=s.integer("port", None, 1, 65535),
        scope=scope,
    )


def _resource(kind: str, s: _Section) -> ResourceConfig:
    if kind == "vip":
        return VipResourceConfig(
            address=_vip_address(s),
            interface=s.text("interface"),
            timeout=s.duration("timeout", VipResourceConfig.timeout),
            arp_count=s.integer("arp_count", VipResourceConfig.arp_count, 1),
            arp_interval=s.duration("arp_interval", VipResourceConfig.arp_interval),
        )
    if kind == "ocf":
        return _ocf_resource(s)
    if kind == "systemd":
        return SystemdResourceConfig(
            units=s.argv("units") or (),
            timeout=s.duration("timeout", SystemdResourceConfig.timeout),
        )
    return CommandResourceConfig(
        start=s.argv("start") or (),
        stop=s.argv("stop") or (),
        status=s.argv("status", required=False),
        timeout=s.duration("timeout", CommandResourceConfig.timeout),
    )


def _ocf_resource(s: _Section) -> OcfResourceConfig:
    """An OCF agent: it must exist, and its meta-data decides which params are required."""
    from failoverd.ocf import validate  # imports this module: a late import

    agent = s.text("agent")
    raw = s.data.get("params")
    params: list[tuple[str, str]] = []
    if raw is not None and not isinstance(raw, Mapping):
        s.found.problem(s.key("params"), f"expected a mapping of OCF parameters, got {raw!r}")
    for k, v in (raw or {}).items() if isinstance(raw, Mapping) else []:
        if isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, str | int | float):
            s.found.problem(s.key(f"params.{k}"), f"expected a string or number, got {v!r}")
            continue
        params.append((str(k), str(v)))
    if agent and s.found.ok(s.key("agent"), s.key("params")):
        for key, message in validate(agent, dict(params)):
            s.found.problem(s.key(key), message)
    return OcfResourceConfig(
        agent=agent,
        params=tuple(params),
        timeout=s.duration("timeout", OcfResourceConfig.timeout),
    )


def _vip_address(s: _Section) -> str:
    address = s.text("address")
    try:
        ipaddress.ip_interface(address)
        valid = "/" in address  # without a prefix the kernel would guess /32
    except ValueError:
        valid = False
    if address and not valid:
        msg = "expected an address with a prefix length like 192.0.2.25/24"
        s.found.problem(s.key("address"), f"{msg}, got {address!r}")
    return address


def _fencer(
    kind: str, s: _Section, health: HealthConfig, watchdog: WatchdogConfig | None
) -> FencerConfig:
    if kind == "ssh":
        return _ssh_fencer(s, health)
    if kind == "command":
        timeout = s.duration("timeout", CommandFencerConfig.timeout)
        return CommandFencerConfig(
            argv=s.argv("argv") or (),
            timeout=timeout,
            check_argv=s.argv("check_argv", required=False),
            check_interval=_check_interval(s, CommandFencerConfig.check_interval),
        )
    _lease_wait_needs_a_device(s, watchdog)
    return LeaseWaitFencerConfig()


def _lease_wait_needs_a_device(s: _Section, watchdog: WatchdogConfig | None) -> None:
    """lease-wait trusts that a frozen or lease-less old active has been *reset* by
    the time the wait is over. Only a watchdog device (hardware, or softdog with
    nowayout) does that; systemd's watchdog restarts the daemon and leaves Postfix,
    the units and the VIP running (and a SIGSTOPped daemon cannot even act on it)."""
    msg = "lease-wait is only valid when watchdog is configured with a device (watchdog.device"
    if watchdog is None:
        why = "without one a frozen active keeps serving after its lease"
    elif not watchdog.device:
        why = (
            "watchdog.systemd only restarts the daemon and stops neither the resources nor "
            "the VIP, so a frozen active keeps serving after its lease"
        )
    else:
        return
    s.found.problem(s.at, f"{msg}, e.g. /dev/watchdog, on every member): {why}")


def _ssh_fencer(s: _Section, health: HealthConfig) -> SshFencerConfig:
    key_file, known_hosts = s.text("key_file"), s.text("known_hosts")
    if key_file and os.path.exists(key_file):
        _check_private(s.found, s.key("key_file"), key_file)
    for name, path in (("key_file", key_file), ("known_hosts", known_hosts)):
        if path and not os.path.exists(path):
            s.found.note(s.key(name), f"{path} does not exist yet: ssh fencing fails until it does")
    ports = s.ports("verify_ports")
    if ports is None:  # default: what this node serves, which the peer serves when active
        ports = tuple(dict.fromkeys(c.port for c in health.checks if c.type != "command"))
    if not ports:
        msg = "no ports to verify: a fence is trusted on the remote command's exit status alone"
        s.found.note(s.key("verify_ports"), msg)
    timeout = s.duration("timeout", SshFencerConfig.timeout)
    return SshFencerConfig(
        user=s.text("user"),
        key_file=key_file,
        known_hosts=known_hosts,
        port=s.integer("port", SshFencerConfig.port, 1, 65535),
        timeout=timeout,
        connect_timeout=_ssh_connect_timeout(s, timeout),
        check_interval=_check_interval(s, SshFencerConfig.check_interval),
        verify_ports=ports,
    )


# Fence readiness probes each method every check_interval, default 30 s: a broken
# path shows within 30 s, long before anyone could act on it, while one ssh probe
# (login plus the peer's fence-self --dry-run: ~10 ms of CPU here and ~70 ms on the
# peer, measured) every 30 s costs the pair about 0.25 % of a core. Shorter than 2 s
# would spend more CPU on probing than the daemon spends on everything else; longer
# than 10 minutes leaves a broken path unnoticed for too long to be useful.
_CHECK_INTERVAL_RANGE = (2.0, 600.0)


def _check_interval(s: _Section, default: float) -> float:
    interval = s.duration("check_interval", default)
    low, high = _CHECK_INTERVAL_RANGE
    if s.has("check_interval") and not low <= interval <= high:
        s.found.problem(
            s.key("check_interval"), f"must be {_s(low)} to {_s(high)}, got {_s(interval)}"
        )
    return interval


def _ssh_connect_timeout(s: _Section, timeout: float) -> float:
    """The default, 0.5 s. On a LAN the peer's kernel answers a TCP connect within a
    millisecond, even while its userland is overloaded (the SSH banner that follows
    gets the whole timeout). Linux resends a lost SYN only after 1 s, so no value
    below 1 s survives a lost SYN and 1 s barely does: 0.5 s is as tolerant as 1 s
    and still 500 round trips long. A peer silent that long is powered off or cut
    off, and waiting longer only delays the next, stronger method. Giving up early is
    always safe: the chain moves on to that method, it never skips fencing."""
    connect = s.duration("connect_timeout", SshFencerConfig.connect_timeout)
    if s.has("connect_timeout") and connect > timeout:
        msg = f"{_s(connect)} is longer than timeout ({_s(timeout)}), which bounds the whole fence"
        s.found.problem(s.key("connect_timeout"), msg)
    return min(connect, timeout)


def _watchdog(root: _Section) -> WatchdogConfig | None:
    if not root.has("watchdog"):
        return None
    s = root.section("watchdog", "systemd device timeout")
    watchdog = WatchdogConfig(
        systemd=s.flag("systemd", False),
        device=s.text("device", "") or None,
        timeout=s.duration("timeout", WatchdogConfig.timeout),
    )
    if not (watchdog.systemd or watchdog.device):
        s.found.note("watchdog", "neither systemd: true nor a device is set, so no watchdog runs")
        return None
    return watchdog


def _metrics(root: _Section) -> MetricsConfig | None:
    if not root.has("metrics"):
        return None
    s = root.section("metrics", "listen")
    msg = "expected host:port like 127.0.0.1:9468 or [::1]:9468"
    raw = s.data.get("listen")
    if _is_int(raw) or (isinstance(raw, str) and raw.strip().isdigit()):
        # `listen: 9468`: a port alone does not say which addresses may scrape.
        bare = str(raw).strip()
        hint = f"write 127.0.0.1:{bare} (this host only) or 0.0.0.0:{bare} (every address)"
        s.found.problem(s.key("listen"), f"{msg}, got the bare port {bare}: {hint}")
        return MetricsConfig(host="", port=0)
    listen = s.text("listen")
    m = _LISTEN.fullmatch(listen)
    port = int(m["p6"] or m["port"]) if m else 0
    if listen and not 1 <= port <= 65535:
        s.found.problem(s.key("listen"), f"{msg}, got {listen!r}")
    return MetricsConfig(host=(m["v6"] or m["host"]) if m else "", port=port)


def _hooks(root: _Section) -> tuple[HookConfig, ...]:
    """`hooks: [{on: [EVENT, ...], argv: [...], timeout: 10s}]`."""
    hooks = []
    for at, item in root.items("hooks"):
        s = _Section(root.found, at, item, "on argv timeout")
        if not isinstance(item, Mapping):
            continue
        events: list[str] = []
        on = item.get("on")
        if not isinstance(on, list) or not on:
            wanted = f"expected a non-empty list of events ({', '.join(HOOK_EVENTS)})"
            s.found.problem(s.key("on"), f"{wanted}, got {on!r}")
        else:
            for i, event in enumerate(on):
                if event in HOOK_EVENTS:
                    events.append(event)
                else:
                    close = difflib.get_close_matches(str(event), HOOK_EVENTS, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    s.found.problem(
                        f"{s.key('on')}[{i}]",
                        f"unknown event {event!r}{hint} (known: {', '.join(HOOK_EVENTS)})",
                    )
        argv = s.argv("argv") or ()
        timeout = s.duration("timeout", HookConfig.timeout)
        hooks.append(HookConfig(on=tuple(events), argv=argv, timeout=timeout))
    return tuple(hooks)


def _log(s: _Section) -> LogConfig:
    fmt = s.choice("format", LogConfig.format, ("json", "console"))
    level = s.choice("level", LogConfig.level, ("debug", "info", "warning", "error"))
    return LogConfig(
        format=cast(Literal["json", "console"], fmt),
        level=cast(Literal["debug", "info", "warning", "error"], level),
    )


def _parse(path: str, data: Mapping[Any, Any], found: _Findings) -> Config:
    root = _Section(found, "", data, _TOP)
    cluster = root.name("cluster")
    node = _node(root.section("node", _NODE))
    peers = _peers(root, node.name)
    zookeeper = _zookeeper(root.section("zookeeper", _ZOOKEEPER))
    health = _health(root.section("health", "interval rise fall checks grace"))
    resources = [
        _resource(*t)
        for at, v in root.items("resources")
        if (t := _typed(found, at, v, _RESOURCES))
    ]
    watchdog = _watchdog(root)
    fencing_items = root.items("fencing")
    if not fencing_items and found.ok("fencing"):
        why = "a node must be able to fence its peer before it takes over"
        found.problem("fencing", f"no fencing method configured: {why}")
    fencing = [
        _fencer(*t, health, watchdog)
        for at, v in fencing_items
        if (t := _typed(found, at, v, _FENCERS))
    ]
    switchover = root.section("switchover", "timeout")
    flap = root.section("flap", "max_failovers window backoff")
    return Config(
        path=path,
        cluster=cluster,
        node=node,
        peers=peers,
        zookeeper=zookeeper,
        health=health,
        resources=tuple(resources),
        fencing=tuple(fencing),
        watchdog=watchdog,
        switchover=SwitchoverConfig(
            timeout=switchover.duration("timeout", SwitchoverConfig.timeout)
        ),
        flap=FlapConfig(
            max_failovers=flap.integer("max_failovers", FlapConfig.max_failovers, 1),
            window=flap.duration("window", FlapConfig.window),
            backoff=flap.duration("backoff", FlapConfig.backoff, zero_ok=True),
        ),
        metrics=_metrics(root),
        log=_log(root.section("log", "format level")),
        hooks=_hooks(root),
    )


def _check_timing(c: Config, found: _Findings) -> None:
    """The timing budget of DESIGN.md §5: errors where the lease would be unsafe, notes
    where safety rests on fencing or failover may come sooner or later than expected."""
    session, margin = c.zookeeper.session_timeout, c.zookeeper.lease_margin
    st = f"zookeeper.session_timeout ({_s(session)})"
    if found.ok("zookeeper.session_timeout") and not 1.0 <= session <= 120.0:
        why = "ZooKeeper's minimum is 2 ticks, and a longer one delays every failover"
        found.problem("zookeeper.session_timeout", f"must be 1s to 120s ({why}), got {_s(session)}")
    elif found.ok("zookeeper.lease_margin") and margin > session / 2:
        found.problem(
            "zookeeper.lease_margin",
            f"{_s(margin)} is more than half of {st}: it must be at most {_s(session / 2)} "
            "so the lease is renewed at least twice before it lapses",
        )
    stop = sum(r.timeout for r in c.resources)  # resources stop one after another
    if stop > margin:
        found.note(
            "resources",
            f"may take up to {_s(stop)} to stop but the lease margin is only {_s(margin)}: "
            "a partitioned active may still be stopping when its session expires; "
            "fencing the old active is what keeps this safe",
        )
    h = c.health
    if h.checks and h.interval * h.fall < session:
        found.note(
            "health",
            f"health.interval ({_s(h.interval)}) x health.fall ({h.fall}) is shorter than {st}: "
            "health failover reacts faster than ZooKeeper liveness, "
            "so a brief stall (load spike, I/O pause) could cause a failover",
        )
    if not h.checks:
        found.note("health.checks", "none: the active is replaced only if its session expires")
    if c.switchover.timeout <= session:
        found.note(
            "switchover.timeout",
            f"{_s(c.switchover.timeout)} is not longer than {st}: a switchover stops resources "
            "here and starts them on the peer, so it may time out while it still completes",
        )
    _check_lease_wait(c, found)


def _check_lease_wait(c: Config, found: _Findings) -> None:
    kinds = [f.type for f in c.fencing]
    if "lease-wait" not in kinds or not c.watchdog or not c.watchdog.device:
        return  # without a watchdog device lease-wait is already a problem
    at = f"fencing[{kinds.index('lease-wait')}]"
    wait = c.zookeeper.session_timeout + c.watchdog.timeout + c.zookeeper.lease_margin
    only = "the only fencing method; " if set(kinds) == {"lease-wait"} else ""
    found.note(
        at,
        f"{only}a takeover by lease-wait waits {_s(wait)} (session_timeout + watchdog.timeout "
        "+ lease_margin) and is safe only if every member runs a watchdog device; "
        "this file cannot check the peers'",
    )
    if kinds[-1] != "lease-wait":
        found.note(at, "lease-wait always succeeds, so the methods after it never run")


def load_config(path: str) -> Config:
    """Read, parse and validate one node's config file; raise ConfigError listing every problem."""
    found = _Findings(path)
    config = _parse(path, _read_yaml(path), found)
    _check_timing(config, found)
    if found.problems:
        raise ConfigError(found.problems)
    return replace(config, notes=tuple(found.notes))


def check_report(path: str, machine: bool = True) -> tuple[int, str]:
    """What ``failoverd -c FILE --check`` prints, and its exit code (0 valid, 2 invalid).

    A valid file is also checked against this machine: preflight.py (ZooKeeper access,
    the state dir, owners and modes) and, with `machine`, host_checks.py (programs,
    units, interfaces, tools). Errors there make it invalid too; warnings are notes."""
    try:
        config = load_config(path)
    except ConfigError as e:
        return 2, "\n".join(e.problems)
    from failoverd.preflight import preflight  # the machine's side: access, state dir, owners

    problems, notes = preflight(config)
    if machine:
        from failoverd.host_checks import host_checks  # programs, units, interfaces, tools
        from failoverd.preflight import authorized_keys_notes  # this node as a fence target

        notes += authorized_keys_notes(config)
        for f in host_checks(config):
            if f.severity == "error":
                problems.append(f"{path}: {f.at}: {f.message}")
            else:
                notes.append(f"{f.at}: {f.message}")
    if problems:
        return 2, "\n".join(problems)
    config = replace(config, notes=(*config.notes, *notes))
    peers, methods = len(config.peers), [f.type for f in config.fencing]
    summary = (
        f"cluster {config.cluster}, node {config.node.name}, {peers} peer{'s' * (peers != 1)}, "
        f"{len(methods)} fencing method{'s' * (len(methods) != 1)}: {', '.join(methods)}"
    )
    return 0, "\n".join([f"{path}: OK ({summary})", *(f"{path}: note: {n}" for n in config.notes)])
