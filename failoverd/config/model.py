"""The parsed shape of a node's configuration: frozen dataclasses with
units resolved. Other modules depend on these names: change them with care."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# The highest node.priority: what peers accept in a member's status (zk/znodes.py
# MAX_PRIORITY, the same number). A member whose status its peers cannot decode
# is invisible to them, so the file may not hold a priority they would refuse.
PRIORITY_MAX = 1_000_000


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
    # "sasl": SASL DIGEST-MD5, which the server checks against its JAAS file, so
    # only users it knows get a session (deploy/zookeeper/README.md). "digest":
    # ZooKeeper's digest scheme, which accepts any user:password and only
    # identifies; the ACLs alone then keep others out.
    scheme: Literal["digest", "sasl"]
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
    # Local lease = last round trip + session_timeout - lease_margin.
    # None in the file means session_timeout / 4; always resolved to a float here.
    lease_margin: float = 0.75
    # Running without `auth` must be asked for: an open tree lets anyone who
    # reaches ZooKeeper delete the lock or mark the breadcrumb clean.
    insecure: bool = False
    # Operators' ZooKeeper ids: with the digest scheme "user:base64(sha1(user:
    # password))" (what `failoverctl digest USER` prints), with sasl the user name.
    # They may read the tree and write `control`, nothing else. Only a hash or a
    # name is here, so this file holds no operator password.
    operators: tuple[str, ...] = ()
    tls: ZkTlsConfig | None = None


# Health checks that talk to a port (and so name the ports a fence must find closed).
NET_CHECKS = ("smtp", "imap", "tcp")


@dataclass(frozen=True)
class CheckConfig:
    type: Literal["smtp", "imap", "tcp", "command", "path"]
    timeout: float
    host: str = "127.0.0.1"
    port: int = 0  # smtp/imap/tcp
    argv: tuple[str, ...] = ()  # command
    # path: looked at inside the daemon, no process forked (failoverd/health.py PathCheck).
    # It must exist (and be a mount point / writable when asked); with `absent` it
    # must not exist (an operator's drain flag).
    path: str = ""
    absent: bool = False
    writable: bool = False
    mountpoint: bool = False
    # "active": judged only while this node runs its resources (a standby's Postfix
    # is stopped, so its smtp check would always fail and no standby could ever be
    # eligible). "always": judged on every node, e.g. "is the mail store reachable".
    # Default: active for smtp/imap/tcp, always for command and path.
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
    # How `after:` names it (config/order.py); "": the name derived from its kind.
    name: str = ""
    # What it starts after (config/order.py); None: the resource listed before it.
    after: tuple[str, ...] | None = None
    type: Literal["vip"] = "vip"


@dataclass(frozen=True)
class SystemdResourceConfig:
    units: tuple[str, ...]
    timeout: float = 30.0
    name: str = ""
    after: tuple[str, ...] | None = None
    type: Literal["systemd"] = "systemd"


@dataclass(frozen=True)
class CommandResourceConfig:
    start: tuple[str, ...]
    stop: tuple[str, ...]
    status: tuple[str, ...] | None = None
    timeout: float = 30.0
    # The fast path, used when the stop is a fence (fence-self, a lost lease); None:
    # the stop serves for both (failoverd/resources/base.py, Resource.kill).
    kill: tuple[str, ...] | None = None
    name: str = ""
    after: tuple[str, ...] | None = None
    type: Literal["command"] = "command"


@dataclass(frozen=True)
class OcfResourceConfig:
    agent: str  # PROVIDER:TYPE, e.g. heartbeat:Filesystem
    params: tuple[tuple[str, str], ...] = ()  # OCF_RESKEY_<name>=<value>, in file order
    timeout: float = 30.0
    name: str = ""
    after: tuple[str, ...] | None = None
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
    # see fencing.py's _ssh_connect_timeout for the default.
    connect_timeout: float = 0.5
    # Fence readiness probe period (failoverd/fencing/readiness.py); see
    # config/schema.py's CHECK_INTERVAL_RANGE.
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
    """A program run after a transition (failoverd.observe.hooks), for the listed events."""

    events: tuple[str, ...]
    argv: tuple[str, ...]
    timeout: float = 10.0


# The events a hook may subscribe to.
HOOK_EVENTS = (
    "promoted", "demoted", "fenced", "fence_failed", "stop_failed", "flap_limit",
    "fence_path_lost", "epoch_exhausted",
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


@dataclass(frozen=True)
class OperatorConfig:
    """An operator's own failoverctl config (config/operator.py): the cluster and how
    to reach it, with the operator's credential instead of the nodes'."""

    path: str
    cluster: str
    members: tuple[str, ...]
    zookeeper: ZooKeeperConfig
    # The operator's "user:password" file (None: zookeeper.insecure, no credential).
    credential: str | None
    switchover: SwitchoverConfig = field(default_factory=SwitchoverConfig)


class ConfigError(Exception):
    """Every problem found in one file, each as 'FILE: key.path: message'."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems
