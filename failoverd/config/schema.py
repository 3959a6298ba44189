"""Every key the file may have, once: the parsers take their allowed keys (and the
defaults that live nowhere else) from here, and reference.py renders the key
reference from the same tables, so an "unknown key" error and the documentation
cannot disagree.

A Table is one mapping of the file: a section (``zookeeper``), a nested mapping
(``zookeeper.tls``), an item of a list (``hooks[]``) or, for lists whose items
have a ``type``, one table per type (``fencing[]`` with kind ``ssh``). A new
section is one more Key in TOP and one more Table in TABLES; its parser then
asks ``keys()`` for its allowed keys.

Defaults are the model's (the dataclass field the parser also falls back to),
never typed twice; where the default is a rule rather than a value (``lease_margin``
is a quarter of ``session_timeout``) it is a Rule, written as the parser computes it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from failoverd.config.model import (
    HOOK_EVENTS,
    NET_CHECKS,
    PRIORITY_MAX,
    CheckConfig,
    CommandFencerConfig,
    CommandResourceConfig,
    Config,
    FlapConfig,
    HealthConfig,
    HookConfig,
    LogConfig,
    NodeConfig,
    OcfResourceConfig,
    SshFencerConfig,
    SwitchoverConfig,
    SystemdResourceConfig,
    VipResourceConfig,
    WatchdogConfig,
    ZkAuthConfig,
    ZkTlsConfig,
    ZooKeeperConfig,
)


class Required:
    """The key must be given (when its mapping is)."""


REQUIRED = Required()
# A section whose keys all have defaults: its own table lists them.
AS_BELOW = "each key's default"


@dataclass(frozen=True)
class Rule:
    """A default the parser computes from other keys, in words."""

    text: str


@dataclass(frozen=True)
class Key:
    name: str
    type: str  # as the reference prints it: duration, integer, argv, mapping, ...
    # A value the parser accepts. None for a mapping or list of further keys, whose
    # example is made of its own table's examples.
    example: object = None
    default: object = REQUIRED
    low: float | None = None  # integer: least; duration: least (None: more than 0)
    high: float | None = None
    options: tuple[str, ...] = ()
    note: str = ""  # a further limit the parser checks, in words
    doc: str = ""  # one line
    # The key this one is an old spelling of: still accepted, never given together
    # with it, and left out of the examples.
    spelling_of: str = ""

    @property
    def required(self) -> bool:
        return isinstance(self.default, Required) and not self.spelling_of


@dataclass(frozen=True)
class Table:
    path: str  # "zookeeper.tls", "fencing[]", "peers.<name>"; "" is the top level
    doc: str
    keys: tuple[Key, ...]
    kind: str = ""  # the `type` value this table is for, in a typed list


def _d(model: type, name: str) -> object:
    """The dataclass field's default: what the parser falls back to."""
    f = next(f for f in dataclasses.fields(model) if f.name == name)
    if f.default is dataclasses.MISSING:
        raise LookupError(f"{model.__name__}.{name} has no default")
    return f.default


def _options(model: type, name: str) -> tuple[str, ...]:
    """The values of a Literal-typed field of the model."""
    hint = typing.get_type_hints(model)[name]
    return tuple(a for a in typing.get_args(hint) if isinstance(a, str))


def _type_key(kind: str) -> Key:
    return Key("type", "choice", kind, options=(kind,), doc=f"`{kind}` selects this kind.")


def _timeout(model: type, example: str, doc: str) -> Key:
    return Key("timeout", "duration", example, _d(model, "timeout"), doc=doc)


# A port answers at once or the service is in trouble; a command may do real work; a
# file system that takes a second to answer a stat is hung (a dead NFS server).
CHECK_TIMEOUT = {"smtp": 2.0, "imap": 2.0, "tcp": 2.0, "command": 5.0, "path": 1.0}


def check_scope(kind: str) -> str:
    """A standby's services are stopped, so checks that talk to a port are judged only
    on the active; a command or a path (the mail store) is judged on every node."""
    return "active" if kind in NET_CHECKS else "always"


def _check(kind: str, doc: str, *keys: Key) -> Table:
    timeout = Key("timeout", "duration", "2s", CHECK_TIMEOUT[kind],
                  doc="How long one check may take.")  # fmt: skip
    scope = Key(
        "scope", "choice", check_scope(kind), check_scope(kind),
        options=_options(CheckConfig, "scope"),
        doc="active: judged only while this node runs the resources; always: on every node.",
    )  # fmt: skip
    return Table("health.checks[]", doc, (_type_key(kind), *keys, timeout, scope), kind)


def _net(port: int) -> tuple[Key, Key]:
    return (
        Key("host", "string", "127.0.0.1", _d(CheckConfig, "host"), doc="Where it listens."),
        Key("port", "integer", port, REQUIRED, 1, 65535, doc="Its port."),
    )


def _order(derived: str, name: str, after: list[str]) -> tuple[Key, Key]:
    """`name:` and `after:`, which every kind of resource has (config/order.py). The
    examples of the four kinds make one valid order together (reference.py's file)."""
    return (
        Key("name", "name", name, Rule(derived), note="unique among the resources",
            doc="What after: calls it; it also names it in logs and fence reports."),
        Key("after", "list of names", after, Rule("the resource listed before it"),
            note="no cycles; [] waits for nothing",
            doc="Start once these have started, stop before them; without after: "
            "anywhere, the list order, one at a time."),
    )  # fmt: skip


_ARGV_NOTE = "run directly, never through a shell"


# Fence readiness probes each method every check_interval, default 30 s: a broken
# path shows within 30 s, long before anyone could act on it, while one ssh probe
# (login plus the peer's fence-self --dry-run: ~10 ms of CPU here and ~70 ms on the
# peer, measured) every 30 s costs the pair about 0.25 % of a core. Shorter than 2 s
# would spend more CPU on probing than the daemon spends on everything else; longer
# than 10 minutes leaves a broken path unnoticed for too long to be useful.
CHECK_INTERVAL_RANGE = (2.0, 600.0)


def _check_interval(model: type) -> Key:
    low, high = CHECK_INTERVAL_RANGE
    return Key("check_interval", "duration", "30s", _d(model, "check_interval"), low, high,
               doc="How often fence readiness probes this method.")  # fmt: skip


TOP = Table("", "The top level of the file.", (
    Key("cluster", "name", "mail-east",
        doc="The cluster's name: its znodes live under zookeeper.root."),
    Key("node", "mapping", doc="This node."),
    Key("peers", "mapping", doc="Every other member of the cluster, by name."),
    Key("zookeeper", "mapping", doc="The ensemble that holds the lease."),
    Key("health", "mapping", None, Rule(AS_BELOW), doc="Health checks and how they count."),
    Key("resources", "list", None, _d(Config, "resources"),
        doc="What the active runs: started in order (or as after: says), stopped in reverse."),
    Key("fencing", "list", None, REQUIRED, note="at least one method",
        doc="How to fence the peer, tried in order until one succeeds."),
    Key("watchdog", "mapping", None, _d(Config, "watchdog"),
        doc="A watchdog that resets a hung node."),
    Key("switchover", "mapping", None, Rule(AS_BELOW), doc="A planned switchover."),
    Key("flap", "mapping", None, Rule(AS_BELOW), doc="The limit on repeated failovers."),
    Key("metrics", "mapping", None, _d(Config, "metrics"),
        doc="The HTTP endpoints (/metrics, /health, /status, ...)."),
    Key("log", "mapping", None, Rule(AS_BELOW), doc="Log format and level."),
    Key("hooks", "list", None, _d(Config, "hooks"), doc="Programs run after a transition."),
))  # fmt: skip

TABLES: tuple[Table, ...] = (
    TOP,
    Table("node", "This node.", (
        Key("name", "name", "mail1", doc="This member's name; it names a ZooKeeper node."),
        Key("address", "address", "10.0.0.11", doc="Where peers reach this node (ssh fencing)."),
        Key("priority", "integer", 1, _d(NodeConfig, "priority"), 0, PRIORITY_MAX,
            doc="Lower is preferred: a node waits priority x priority_delay before "
            "contending for the lease."),
        Key("priority_delay", "duration", "1s", _d(NodeConfig, "priority_delay"), 0,
            doc="The wait per step of priority."),
        Key("state_dir", "path", "/var/lib/failoverd", _d(NodeConfig, "state_dir"),
            doc="Where the fence marker, its lock and the pid file live."),
    )),
    Table("peers.<name>", "One other member; its key is that member's node.name.", (
        Key("address", "address", "10.0.0.12",
            doc="Where this node reaches the peer (ssh fencing, status)."),
    )),
    Table("zookeeper", "The ensemble, the session and access to the tree.", (
        Key("hosts", "string", "zk1:2181,zk2:2181,zk3:2181",
            doc="The ensemble as host:port,host:port,..."),
        Key("session_timeout", "duration", "3s", _d(ZooKeeperConfig, "session_timeout"), 1, 120,
            doc="The session timeout; the lease lapses with the session."),
        Key("root", "znode path", "/failoverd", _d(ZooKeeperConfig, "root"),
            doc="The parent of every cluster's znode; absolute, and not / itself."),
        Key("auth", "mapping", None, _d(ZooKeeperConfig, "auth"),
            doc="This node's identity on ZooKeeper."),
        Key("lease_margin", "duration", "750ms", Rule("session_timeout / 4"),
            note="at most session_timeout / 2",
            doc="The local lease ends this long before the session could expire "
            "(clock-rate drift, scheduling delay)."),
        Key("insecure", "boolean", False, _d(ZooKeeperConfig, "insecure"),
            doc="Run without auth, on a tree anyone may change; contradicts auth."),
        Key("operators", "list of ids", ["ops:w4PIv8/Wzcq4qj4/MfEQ8pvUSS4="],
            _d(ZooKeeperConfig, "operators"),
            doc="Operators' ids (digest: what failoverctl digest USER prints; sasl: the "
            "user name): they may read the tree and write control. Needs auth."),
        Key("tls", "mapping", None, _d(ZooKeeperConfig, "tls"),
            doc="TLS to the servers' secureClientPort."),
    )),
    Table("zookeeper.auth", "The credential the nodes' sessions authenticate with.", (
        # digest stays the default: a file written before sasl existed keeps working.
        Key("scheme", "choice", "digest", "digest", options=_options(ZkAuthConfig, "scheme"),
            doc="sasl: checked against the servers' JAAS file; digest: any "
            "user:password, which only identifies."),
        Key("credential_file", "path", "/etc/failoverd/zk-credential",
            doc="A file holding user:password, mode 600."),
    )),
    Table("zookeeper.tls", "The CA of the servers' certificates and, if asked for, ours.", (
        Key("ca", "path", "/etc/failoverd/zk-ca.pem", doc="The CA certificate (PEM)."),
        Key("cert", "path", "/etc/failoverd/zk-client.pem", _d(ZkTlsConfig, "cert"),
            doc="This node's client certificate (PEM); goes with key."),
        Key("key", "path", "/etc/failoverd/zk-client.key", _d(ZkTlsConfig, "key"),
            doc="Its private key (PEM), mode 600; goes with cert."),
    )),
    Table("health", "How this node judges its own services.", (
        Key("interval", "duration", "1s", _d(HealthConfig, "interval"),
            doc="How often the checks run."),
        Key("rise", "integer", 2, _d(HealthConfig, "rise"), 1,
            doc="Consecutive passes to become healthy."),
        Key("fall", "integer", 3, _d(HealthConfig, "fall"), 1,
            doc="Consecutive failures to become unhealthy."),
        Key("checks", "list", None, _d(HealthConfig, "checks"),
            doc="The checks; without any, the active is replaced only when its session "
            "expires."),
        Key("grace", "duration", "10s", _d(HealthConfig, "grace"), 0,
            doc="After a promotion, failures of active-scope checks count only once they "
            "passed once or this long went by."),
    )),
    _check("smtp", "An SMTP greeting on a port.", *_net(25)),
    _check("imap", "An IMAP greeting on a port.", *_net(143)),
    _check("tcp", "A TCP connect to a port.", *_net(4190)),
    _check("command", "A program; exit 0 is healthy.",
        Key("argv", "argv", ["/usr/local/bin/check-spool"],
            doc=f"The program and its arguments ({_ARGV_NOTE})."),
    ),
    _check("path", "A path looked at inside the daemon, no process forked.",
        Key("path", "path", "/srv/mail", doc="An absolute path that must exist."),
        Key("absent", "boolean", False, _d(CheckConfig, "absent"),
            doc="The path must not exist instead (an operator's drain flag)."),
        Key("writable", "boolean", True, _d(CheckConfig, "writable"),
            doc="The path must be writable."),
        Key("mountpoint", "boolean", True, _d(CheckConfig, "mountpoint"),
            doc="The path must be a mount point."),
    ),
    Table("resources[]", "A virtual IP address, announced with gratuitous ARP.", (
        _type_key("vip"),
        Key("address", "address/prefix", "192.0.2.25/24",
            doc="The address with its prefix length."),
        Key("interface", "string", "eth0", doc="The interface it goes on."),
        _timeout(VipResourceConfig, "5s", "How long adding or removing it may take."),
        Key("arp_count", "integer", 3, _d(VipResourceConfig, "arp_count"), 1,
            doc="Gratuitous ARPs sent after adding it."),
        Key("arp_interval", "duration", "1s", _d(VipResourceConfig, "arp_interval"),
            doc="The pause between them."),
        *_order("vip ADDRESS on INTERFACE", "vip", []),
    ), "vip"),
    Table("resources[]", "systemd units, started and stopped together.", (
        _type_key("systemd"),
        Key("units", "list of strings", ["postfix.service", "dovecot.service"], doc="The units."),
        _timeout(SystemdResourceConfig, "30s", "How long starting or stopping them may take."),
        *_order("systemd UNIT UNIT...", "mail", ["store", "vip"]),
    ), "systemd"),
    Table("resources[]", "A program's start, stop and status commands.", (
        _type_key("command"),
        Key("start", "argv", ["/usr/local/sbin/mailstore-mount"],
            doc=f"Starts the resource ({_ARGV_NOTE})."),
        Key("stop", "argv", ["/usr/local/sbin/mailstore-umount"], doc="Stops it."),
        Key("status", "argv", ["/usr/bin/mountpoint", "-q", "/srv/mail"],
            _d(CommandResourceConfig, "status"),
            doc="Exits 0 if the resource runs."),
        Key("kill", "argv", ["/usr/local/sbin/postfix-kill", "/etc/postfix"],
            _d(CommandResourceConfig, "kill"),
            doc="Stops it fast, for a fence: kills rather than waits (unset: `stop`)."),
        _timeout(CommandResourceConfig, "30s", "How long start, stop or kill may take."),
        *_order("command resources[N]", "backup", ["mail"]),
    ), "command"),
    Table("resources[]", "An OCF resource agent.", (
        _type_key("ocf"),
        Key("agent", "string", "heartbeat:Filesystem", doc="The agent as PROVIDER:TYPE."),
        Key("params", "mapping", {"device": "/dev/drbd0", "directory": "/srv/mail"},
            _d(OcfResourceConfig, "params"),
            doc="Its parameters (OCF_RESKEY_name=value), strings or numbers."),
        _timeout(OcfResourceConfig, "30s", "How long one action may take."),
        *_order("ocf PROVIDER:TYPE resources[N]", "store", []),
    ), "ocf"),
    Table("fencing[]", "Log in to the peer and have it fence itself.", (
        _type_key("ssh"),
        Key("user", "string", "failoverd", doc="The user on the peer."),
        Key("key_file", "path", "/etc/failoverd/fence_key", doc="The private key, mode 600."),
        Key("known_hosts", "path", "/etc/failoverd/known_hosts", doc="The peer's host keys."),
        Key("port", "integer", 22, _d(SshFencerConfig, "port"), 1, 65535,
            doc="The peer's ssh port."),
        _timeout(SshFencerConfig, "5s", "How long the whole fence may take."),
        Key("connect_timeout", "duration", "500ms", _d(SshFencerConfig, "connect_timeout"),
            note="at most timeout", doc="How long the TCP connect may take."),
        _check_interval(SshFencerConfig),
        Key("verify_ports", "list of ports", [25, 143],
            Rule("the ports of the smtp, imap and tcp health checks"),
            doc="Ports on the peer that must refuse connections after the fence."),
    ), "ssh"),
    Table("fencing[]", "A program that fences the peer (power off, PDU outlet).", (
        _type_key("command"),
        Key("argv", "argv", ["/usr/local/sbin/pdu-off", "{node}"],
            doc=f"The program; {{node}} and {{address}} become the peer's name and "
            f"address ({_ARGV_NOTE})."),
        _timeout(CommandFencerConfig, "20s", "How long it may take."),
        Key("check_argv", "argv", ["/usr/local/sbin/pdu-status", "{node}"],
            _d(CommandFencerConfig, "check_argv"),
            doc="Its status action, run by fence readiness: exit 0 means the method "
            "would work."),
        _check_interval(CommandFencerConfig),
    ), "command"),
    Table("fencing[]", "Wait until the peer's lease has surely lapsed and its watchdog "
          "has reset it; valid only with watchdog.device, on every member.", (
        _type_key("lease-wait"),
    ), "lease-wait"),
    Table("watchdog", "A watchdog that acts when the daemon stops.", (
        Key("systemd", "boolean", True, _d(WatchdogConfig, "systemd"),
            doc="Ping systemd's watchdog: it restarts a hung daemon, it stops nothing."),
        Key("device", "path", "/dev/watchdog", _d(WatchdogConfig, "device"),
            doc="A watchdog device: it resets the machine if the daemon stops petting it."),
        Key("timeout", "duration", "10s", _d(WatchdogConfig, "timeout"),
            doc="The device's timeout."),
    )),
    Table("switchover", "A planned switchover.", (
        Key("timeout", "duration", "10s", _d(SwitchoverConfig, "timeout"),
            doc="The longest a switchover request stays in force (its own timeout may "
            "be shorter)."),
    )),
    Table("flap", "The limit on failovers this node's own health causes.", (
        Key("max_failovers", "integer", 3, _d(FlapConfig, "max_failovers"), 1,
            doc="After this many health demotions within window, the active stays "
            "despite failing checks (an operator is needed)."),
        Key("window", "duration", "10m", _d(FlapConfig, "window"),
            doc="The window the demotions are counted in."),
        Key("backoff", "duration", "30s", _d(FlapConfig, "backoff"), 0,
            doc="After demoting itself (failed health or transition), this node does "
            "not contend for the lease for this long. After a failed takeover while "
            "nobody serves, it retries after the session timeout T instead, doubling "
            "with each further failure up to this."),
    )),
    Table("metrics", "The HTTP endpoints: /metrics, /health, /active, /standby, /status.", (
        Key("listen", "host:port", "127.0.0.1:9468",
            doc="Where they listen; a bare port is refused (it does not say who may "
            "connect)."),
    )),
    Table("log", "The daemon's log.", (
        Key("format", "choice", "json", _d(LogConfig, "format"),
            options=_options(LogConfig, "format"),
            doc="One JSON object per line, or text for a terminal."),
        Key("level", "choice", "info", _d(LogConfig, "level"),
            options=_options(LogConfig, "level"), doc="The least severe level written."),
    )),
    Table("hooks[]", "A program run after a transition; it can never block or reverse it.", (
        Key("events", "list of events", ["promoted", "demoted"], options=HOOK_EVENTS,
            doc="The events it runs for."),
        Key("on", "list of events", ["promoted", "demoted"], options=HOOK_EVENTS,
            spelling_of="events",
            doc='Quoted ("on":), the old spelling of events: YAML reads a bare on as true.'),
        Key("argv", "argv", ["/usr/local/lib/failoverd/page-webhook", "/etc/failoverd/pager.url"],
            doc=f"The program ({_ARGV_NOTE}); it gets FAILOVERD_EVENT, FAILOVERD_NODE "
            "and more in its environment."),
        _timeout(HookConfig, "10s", "How long it may run before it is killed."),
    )),
)  # fmt: skip


def tables(path: str) -> list[Table]:
    found = [t for t in TABLES if t.path == path]
    if not found:
        raise LookupError(f"no table for {path!r}")
    return found


def keys(path: str) -> str:
    """The keys a mapping at `path` may have, as Section takes them."""
    (table,) = tables(path)
    return " ".join(k.name for k in table.keys)


def kinds(path: str) -> Mapping[str, str]:
    """The keys each `type` of a typed list may have, besides `type` itself."""
    return {
        t.kind: " ".join(k.name for k in t.keys if k.name != "type") for t in tables(path)
    }


def key(path: str, name: str, kind: str = "") -> Key:
    """One key, for a parser that takes its default or options from here."""
    table = next(t for t in tables(path) if t.kind == kind)
    return next(k for k in table.keys if k.name == name)
