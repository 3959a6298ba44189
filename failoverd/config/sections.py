"""The smaller sections of the config: node, peers, health, watchdog, metrics,
hooks and log."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Literal, cast

from failoverd.config.model import (
    HOOK_EVENTS,
    PRIORITY_MAX,
    CheckConfig,
    HealthConfig,
    HookConfig,
    LogConfig,
    MetricsConfig,
    NodeConfig,
    PeerConfig,
    WatchdogConfig,
)
from failoverd.config.reading import NAME_PATTERN, Section, is_int, typed_item
from failoverd.config.schema import CHECK_TIMEOUT, check_scope, key, keys, kinds

# The keys each section and each ``type`` of health check may have (schema.py).
NODE_KEYS = keys("node")
_CHECKS = kinds("health.checks[]")
_LISTEN = re.compile(r"\[(?P<v6>[^\]]+)\]:(?P<p6>\d+)|(?P<host>[^:\[\]]+):(?P<port>\d+)")


def node_config(s: Section) -> NodeConfig:
    return NodeConfig(
        name=s.name("name"),
        address=s.address("address"),
        priority=s.integer("priority", NodeConfig.priority, 0, PRIORITY_MAX),
        priority_delay=s.duration("priority_delay", NodeConfig.priority_delay, zero_ok=True),
        state_dir=s.text("state_dir", NodeConfig.state_dir),
    )


def peer_configs(root: Section, own_name: str) -> tuple[PeerConfig, ...]:
    found, raw = root.found, root.data.get("peers")
    if not isinstance(raw, Mapping) or not raw:
        found.problem(
            "peers", f"expected at least one peer like {{mail2: {{address: ...}}}}, got {raw!r}"
        )
        return ()
    peers = []
    for name, value in raw.items():
        s = Section(found, f"peers.{name}", value, keys("peers.<name>"))
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            found.problem(s.at, "a peer's name must use letters, digits, '_', '.' or '-'")
        elif name == own_name:
            found.problem(
                s.at, f"{name!r} is this node's own name (node.name); list only the others"
            )
        peers.append(PeerConfig(name=str(name), address=s.address("address")))
    return tuple(peers)


def health_config(s: Section) -> HealthConfig:
    checks = []
    for at, item in s.items("checks"):
        if typed := typed_item(s.found, at, item, _CHECKS):
            checks.append(_check(*typed))
    return HealthConfig(
        interval=s.duration("interval", HealthConfig.interval),
        rise=s.integer("rise", HealthConfig.rise, 1),
        fall=s.integer("fall", HealthConfig.fall, 1),
        checks=tuple(checks),
        grace=s.duration("grace", HealthConfig.grace, zero_ok=True),
    )


def _check(kind: str, s: Section) -> CheckConfig:
    timeout = s.duration("timeout", CHECK_TIMEOUT[kind])
    scopes = key("health.checks[]", "scope", kind).options
    scope = cast(Literal["active", "always"], s.choice("scope", check_scope(kind), scopes))
    if kind == "command":
        return CheckConfig("command", timeout=timeout, argv=s.argv("argv") or (), scope=scope)
    if kind == "path":
        return _path_check(s, timeout, scope)
    return CheckConfig(
        cast(Literal["smtp", "imap", "tcp"], kind),
        timeout=timeout,
        host=s.text("host", CheckConfig.host),
        port=s.integer("port", None, 1, 65535),
        scope=scope,
    )


def _path_check(s: Section, timeout: float, scope: Literal["active", "always"]) -> CheckConfig:
    path = s.text("path")
    if path and not path.startswith("/"):
        s.found.problem(s.key("path"), f"expected an absolute path, got {path!r}")
    absent = s.flag("absent", CheckConfig.absent)
    writable = s.flag("writable", CheckConfig.writable)
    mountpoint = s.flag("mountpoint", CheckConfig.mountpoint)
    for name, asked in (("writable", writable), ("mountpoint", mountpoint)):
        if absent and asked:
            msg = "absent: true says the path must not exist, so it cannot also be " + name
            s.found.problem(s.key(name), msg)
    return CheckConfig(
        "path",
        timeout=timeout,
        path=path,
        absent=absent,
        writable=writable,
        mountpoint=mountpoint,
        scope=scope,
    )


def watchdog_config(root: Section) -> WatchdogConfig | None:
    if not root.has("watchdog"):
        return None
    s = root.section("watchdog", keys("watchdog"))
    watchdog = WatchdogConfig(
        systemd=s.flag("systemd", WatchdogConfig.systemd),
        device=s.text("device", "") or None,
        timeout=s.duration("timeout", WatchdogConfig.timeout),
    )
    if not (watchdog.systemd or watchdog.device):
        s.found.note("watchdog", "neither systemd: true nor a device is set, so no watchdog runs")
        return None
    return watchdog


def metrics_config(root: Section) -> MetricsConfig | None:
    if not root.has("metrics"):
        return None
    s = root.section("metrics", keys("metrics"))
    msg = "expected host:port like 127.0.0.1:9468 or [::1]:9468"
    raw = s.data.get("listen")
    if is_int(raw) or (isinstance(raw, str) and raw.strip().isdigit()):
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


def hook_configs(root: Section) -> tuple[HookConfig, ...]:
    """`hooks: [{events: [EVENT, ...], argv: [...], timeout: 10s}]`.

    `events` was once spelled `on`, which YAML 1.1 (PyYAML) reads, unquoted, as the
    boolean true: `{on: [promoted]}` arrives as `{True: [promoted]}`. A quoted "on"
    is still accepted; a bare one is an error that says what to write instead."""
    hooks = []
    for at, item in root.items("hooks"):
        bare_on = isinstance(item, Mapping) and True in item
        if bare_on:
            msg = "a bare 'on:' key is read by YAML as true: write 'events:' instead"
            root.found.problem(at, msg)
            item = {k: v for k, v in cast(Mapping[Any, Any], item).items() if k is not True}
        s = Section(root.found, at, item, keys("hooks[]"))
        if not isinstance(item, Mapping):
            continue
        key = "on" if "on" in item and "events" not in item else "events"
        if "on" in item and "events" in item:
            s.found.problem(at, "both 'events' and 'on': write only 'events'")
        listed = item.get(key)
        events: list[str] = []
        if not isinstance(listed, list) or not listed:
            if not bare_on:  # already told what to write
                wanted = f"expected a non-empty list of events ({', '.join(HOOK_EVENTS)})"
                s.found.problem(s.key(key), f"{wanted}, got {listed!r}")
        else:
            for i, event in enumerate(listed):
                if event in HOOK_EVENTS:
                    events.append(event)
                else:
                    close = difflib.get_close_matches(str(event), HOOK_EVENTS, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    s.found.problem(
                        f"{s.key(key)}[{i}]",
                        f"unknown event {event!r}{hint} (known: {', '.join(HOOK_EVENTS)})",
                    )
        argv = s.argv("argv") or ()
        timeout = s.duration("timeout", HookConfig.timeout)
        hooks.append(HookConfig(events=tuple(events), argv=argv, timeout=timeout))
    return tuple(hooks)


def log_config(s: Section) -> LogConfig:
    fmt = s.choice("format", LogConfig.format, key("log", "format").options)
    level = s.choice("level", LogConfig.level, key("log", "level").options)
    return LogConfig(
        format=cast(Literal["json", "console"], fmt),
        level=cast(Literal["debug", "info", "warning", "error"], level),
    )
