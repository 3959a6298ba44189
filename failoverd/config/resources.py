"""The ``resources:`` list: VIPs, systemd units, commands and OCF agents."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from failoverd.config.model import (
    CommandResourceConfig,
    OcfResourceConfig,
    ResourceConfig,
    SystemdResourceConfig,
    VipResourceConfig,
)
from failoverd.config.reading import Section
from failoverd.config.schema import kinds

# The keys each ``type`` of resource may have (schema.py).
RESOURCE_KEYS = kinds("resources[]")


def resource_config(kind: str, s: Section) -> ResourceConfig:
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
