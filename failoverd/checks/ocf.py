"""OCF agents against this machine: the agent a `type: ocf` resource names must be
installed and executable, and its own `meta-data` decides which params are required
and which are unknown. The parser (config/) only reads the file; this runs the agent,
so it belongs with the checks of the machine. Both `--check` and the daemon's start
refuse on a problem here (exit 2), with the same ``FILE: key.path: message`` lines as
the parser's; `fence-self` does not ask (it only stops what is configured, and every
fence or readiness probe would otherwise fork each agent's meta-data).
"""

from __future__ import annotations

from failoverd.config import Config, OcfResourceConfig
from failoverd.resources.ocf import validate


def ocf_problems(config: Config) -> list[str]:
    """Each `ocf` resource's problems on this machine, as ``FILE: resources[i].key: message``."""
    problems = []
    for i, resource in enumerate(config.resources):
        if isinstance(resource, OcfResourceConfig):
            for key, message in validate(resource.agent, dict(resource.params)):
                problems.append(f"{config.path}: resources[{i}].{key}: {message}")
    return problems
