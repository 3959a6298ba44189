"""The ``resources:`` list: VIPs, systemd units, commands and OCF agents."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence

from failoverd.config.model import (
    CommandResourceConfig,
    OcfResourceConfig,
    ResourceConfig,
    SystemdResourceConfig,
    VipResourceConfig,
)
from failoverd.config.order import plan, resource_name
from failoverd.config.reading import NAME_PATTERN, Findings, Section, is_int
from failoverd.config.schema import kinds

# The keys each ``type`` of resource may have (schema.py).
RESOURCE_KEYS = kinds("resources[]")


def resource_config(kind: str, s: Section) -> ResourceConfig:
    """One `resources:` entry, with its `name:` and `after:`."""
    cfg = _resource(kind, s)
    return dataclasses.replace(cfg, name=_name(s), after=_after(s))


def _resource(kind: str, s: Section) -> ResourceConfig:
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
        kill=s.argv("kill", required=False),
    )


def _ocf_resource(s: Section) -> OcfResourceConfig:
    """An OCF agent and its params. Whether the agent exists and what its meta-data
    requires is a question for this machine: the parser asks it only through the check
    its caller hands in (checks/ocf.py, for --check and before the daemon starts), so
    its answers are reported in the same pass as every other problem of the file."""
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
    if s.found.agents and agent and s.found.ok(s.key("agent"), s.key("params")):
        for key, message in s.found.agents(agent, dict(params)):
            s.found.problem(s.key(key), message)
    return OcfResourceConfig(
        agent=agent,
        params=tuple(params),
        timeout=s.duration("timeout", OcfResourceConfig.timeout),
    )


def _vip_address(s: Section) -> str:
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


def _name(s: Section) -> str:
    if not s.has("name"):
        return ""
    value = s.data["name"]
    if isinstance(value, str) and NAME_PATTERN.fullmatch(value) and value not in (".", ".."):
        return value
    s.found.problem(s.key("name"), f"expected letters, digits, '_', '.' or '-', got {value!r:.80}")
    return ""


def _after(s: Section) -> tuple[str, ...] | None:
    if "after" not in s.data:
        return None
    value = s.data["after"]
    if value is None:
        value = []  # `after:` with nothing after it: YAML reads null, meant as none
    if not isinstance(value, list):
        s.found.problem(s.key("after"), f"expected a list of resource names, got {value!r:.80}")
        return None
    names = []
    for i, item in enumerate(value):
        at = f"{s.key('after')}[{i}]"
        if is_int(item) or not isinstance(item, str) or not item:
            s.found.problem(at, f"expected a resource's name, got {item!r:.80}")
        elif item in names:
            s.found.problem(at, f"{item!r} is named twice")
        else:
            names.append(item)
    return tuple(names)


def check_order(found: Findings, resources: Sequence[tuple[str, ResourceConfig]]) -> None:
    """Across the list: names unique, every `after:` entry one other resource, no cycle
    (config/order.py has the rules). `resources`: (key path, config) of each entry."""
    names = [resource_name(c, at) for at, c in resources]
    before = len(found.problems)
    for i, (at, c) in enumerate(resources):
        first = names.index(names[i])
        if c.name and first < i:
            found.problem(f"{at}.name", f"{c.name!r} is also the name of {resources[first][0]}")
    afters = [c.after for _, c in resources]
    if all(a is None for a in afters):
        return
    for i, (at, c) in enumerate(resources):
        for k, wanted in enumerate(c.after or ()):
            where = f"{at}.after[{k}]"
            same = [resources[j][0] for j, n in enumerate(names) if n == wanted]
            if wanted == names[i]:
                found.problem(where, f"{wanted!r} is this resource itself")
            elif not same:
                found.problem(where, f"no resource named {wanted!r}{_known(names)}")
            elif len(same) > 1:
                both = " and ".join(same)
                found.problem(
                    where, f"{wanted!r} names {both}: give them each a name: to tell them apart"
                )
    if len(found.problems) > before:
        return  # a cycle through a misspelt name would only repeat the problem
    order = plan(names, afters)
    cycle = order.cycle()
    if cycle:
        steps = [_waits(resources, names, a, b) for a, b in zip(cycle, cycle[1:], strict=False)]
        found.problem(f"{resources[cycle[0]][0]}.after", "a cycle: " + ", ".join(steps))
        return
    # What --check shows, so the operator sees the order the file makes.
    groups = " then ".join(" + ".join(names[i] for i in g) for g in order.groups())
    found.note("resources", f"start order: {groups} (each as soon as what it is after is up); "
               "stopped the other way round")  # fmt: skip


def _waits(
    resources: Sequence[tuple[str, ResourceConfig]], names: list[str], a: int, b: int
) -> str:
    """'postfix waits for store (after:)', or why it waits without `after:`."""
    why = "after:" if resources[a][1].after is not None else "listed before it; it has no after:"
    return f"{names[a]} waits for {names[b]} ({why})"


def _known(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names)
    return f" (the resources are {shown})" if len(shown) <= 300 else ""
