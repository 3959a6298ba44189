"""The leftovers of crashed runs, and `python -m chaos cleanup`, which removes them.

A run that crashed (or was killed) leaves namespaces, their processes, cgroups
and the mail store's loop devices behind. Its registry entry
(chaos/lab/registry.py) names all of them and the runner that owned them; a lab
whose runner is still alive belongs to a run in progress and is kept.
"""

from __future__ import annotations

import json
import re

from chaos.lab import cgroups, netns, registry, store_image
from chaos.lab.network import teardown_names
from chaos.layout import REGISTRY

# Only names of this shape are ever deleted by cleanup: never someone else's namespace.
NS_PATTERN = re.compile(r"^fo\d+[a-z]?-(br|zk\d|mail\d|client)$")


def cleanup(force: bool = False) -> list[str]:
    """Remove leftover labs: registered ones whose runner is gone, and stray `fo*` names.

    A lab whose runner is still alive belongs to a run in progress and is kept
    unless `force`. Returns the namespaces removed.
    """
    removed: list[str] = []
    live: set[str] = set()
    # List the namespaces BEFORE reading the registry: a lab registers before it
    # creates its first namespace, so every name listed here whose lab is alive has a
    # registry entry by the time the registry is read. (The other order would take a
    # lab created between the two reads, by a concurrent run, for a stray.)
    listed = netns.listed()
    for reg in sorted(REGISTRY.glob("fo*.json")) if REGISTRY.exists() else []:
        try:
            info = json.loads(reg.read_text())
        except (OSError, ValueError):
            reg.unlink(missing_ok=True)
            continue
        names = [n for n in info.get("namespaces", []) if NS_PATTERN.match(n)]
        runner = (int(info.get("runner_pid", 0)), info.get("runner_start"))
        if not force and registry.runner_alive(*runner):
            live.update(names)
            continue
        present = [n for n in names if netns.exists(n)]
        cgroups.release(str(info.get("prefix", "")) or "-")
        teardown_names(present)
        store_image.release_registered(info)  # after its processes (and so its mounts) are gone
        removed += present
        reg.unlink(missing_ok=True)
    stray = [n for n in listed if NS_PATTERN.match(n) and n not in live and n not in removed]
    stray = [n for n in stray if netns.exists(n)]
    for prefix in sorted({n.rsplit("-", 1)[0] for n in stray}):
        cgroups.release(prefix)
    teardown_names(stray)
    return removed + stray
