"""OCF agents against this machine: the agent a `type: ocf` resource names must be
installed and executable, and its own `meta-data` decides which params are required
and which are unknown. The parser (config/) only reads the file; this runs the agent,
so it belongs with the checks of the machine. It is handed to the parser, so its
problems come in the same pass as the file's others, as ``FILE: key.path: message``.
Both `--check` and the daemon's start refuse on them (exit 2); `fence-self` and
failoverctl do not ask (fence-self only stops what is configured, and every fence or
readiness probe would otherwise fork each agent's meta-data).
"""

from __future__ import annotations

from failoverd.config import Config, load_config
from failoverd.resources.ocf import validate


def load_checked_config(path: str) -> Config:
    """The config at `path`, its OCF agents checked on this machine; raises ConfigError."""
    return load_config(path, agents=validate)
