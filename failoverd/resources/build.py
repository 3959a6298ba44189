"""The configured resources as objects: one resource of its kind per `resources:` entry."""

from __future__ import annotations

from collections.abc import Iterable

from failoverd.config.model import (
    CommandResourceConfig,
    OcfResourceConfig,
    ResourceConfig,
    SystemdResourceConfig,
    VipResourceConfig,
)
from failoverd.resources.base import Resource
from failoverd.resources.command import CommandResource
from failoverd.resources.systemd import SystemdResource
from failoverd.resources.vip import VipResource


def build_resource(cfg: ResourceConfig, key: str = "resource") -> Resource:
    """`key`: where the config defines it ("resources[2]"), which names it in what is
    published about it (failoverd/resources/base.py)."""
    if isinstance(cfg, VipResourceConfig):
        return VipResource(cfg, native_arp=True, key=key)
    if isinstance(cfg, SystemdResourceConfig):
        return SystemdResource(cfg, key=key)
    if isinstance(cfg, CommandResourceConfig):
        return CommandResource(cfg, key=key)
    if isinstance(cfg, OcfResourceConfig):
        # Imported only for an ocf entry: `fence-self` builds the resources it stops,
        # and the OCF module would cost it structlog and the XML parser.
        from failoverd.resources.ocf import OcfResource

        return OcfResource(cfg, key=key)
    raise TypeError(f"unknown resource config: {cfg!r}")


def build_resources(cfgs: Iterable[ResourceConfig]) -> list[Resource]:
    """The `resources:` list of the config, each named by its key path."""
    return [build_resource(c, f"resources[{i}]") for i, c in enumerate(cfgs)]
