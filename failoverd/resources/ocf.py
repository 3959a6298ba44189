"""OCF resource agents as failoverd resources (Debian's `resource-agents`).

    resources:
      - {type: ocf, agent: heartbeat:Filesystem, timeout: 30s,
         params: {device: /dev/sdb1, directory: /srv/mail, fstype: ext4}}

runs ``$OCF_ROOT/resource.d/heartbeat/Filesystem start|stop|monitor`` with every
param as ``OCF_RESKEY_<name>`` in its environment. Pacemaker's agents are what
operators already trust to mount a shared LUN or move an address; reusing them
means failoverd does not re-implement (and re-debug) that logic.

OCF exit codes (the OCF resource agent API): 0 success / running, 7 not running,
anything else a failure. A stop that finds the resource not running (7) has
done its job: what counts is that nothing is left running.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from failoverd.config.model import OcfResourceConfig
from failoverd.config.order import resource_name
from failoverd.process import CommandOutcome, run_command
from failoverd.resources.base import (
    ResourceError,
    ResourceTimeout,
    failure,
    log_command_failure,
)

log = structlog.get_logger(__name__)

DEFAULT_OCF_ROOT = "/usr/lib/ocf"
OCF_SUCCESS = 0
OCF_NOT_RUNNING = 7
OCF_CODES = {
    0: "success",
    1: "generic error",
    2: "invalid arguments",
    3: "unimplemented action",
    4: "insufficient privileges",
    5: "not installed",
    6: "not configured",
    7: "not running",
    8: "running (promoted)",
    9: "failed (promoted)",
}
META_DATA_TIMEOUT = 10.0
_AGENT = re.compile(r"^(?:ocf:)?(?P<provider>[A-Za-z0-9_.-]+):(?P<type>[A-Za-z0-9_.-]+)$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def ocf_root() -> Path:
    return Path(os.environ.get("OCF_ROOT") or DEFAULT_OCF_ROOT)


def agent_path(agent: str, root: Path | None = None) -> Path | None:
    """`heartbeat:Filesystem` (or `ocf:heartbeat:Filesystem`) -> the agent's executable path."""
    m = _AGENT.match(agent)
    if m is None:
        return None
    return (root or ocf_root()) / "resource.d" / m["provider"] / m["type"]


def agent_env(cfg: OcfResourceConfig, instance: str) -> dict[str, str]:
    env = {"OCF_ROOT": str(ocf_root()), "OCF_RESOURCE_INSTANCE": instance}
    env["OCF_RA_VERSION_MAJOR"], env["OCF_RA_VERSION_MINOR"] = "1", "0"
    env.update({f"OCF_RESKEY_{k}": v for k, v in cfg.params})
    return env


@dataclass(frozen=True)
class AgentParameter:
    name: str
    required: bool


def parse_meta_data(xml_text: str) -> list[AgentParameter]:
    """The parameters an agent declares in its `meta-data` XML."""
    root = ET.fromstring(xml_text)
    return [
        AgentParameter(p.get("name", ""), p.get("required", "0") in ("1", "true"))
        for p in root.iter("parameter")
        if p.get("name")
    ]


def validate(agent: str, params: Mapping[str, str]) -> list[tuple[str, str]]:
    """Problems with an `ocf` entry as (key, message): the agent must exist and declare
    every param given, and every param its meta-data marks required must be given."""
    path = agent_path(agent)
    if path is None:
        return [("agent", f"expected PROVIDER:TYPE like heartbeat:Filesystem, got {agent!r}")]
    if not os.access(path, os.X_OK):
        return [("agent", f"no executable OCF agent {path} (is resource-agents installed?)")]
    bad = [k for k in params if not _PARAM.match(k)]
    out = [(f"params.{k}", "expected a name of letters, digits and '_'") for k in bad]
    text, error = meta_data(path)
    if text is None:
        return out + [("agent", f"{agent} meta-data failed: {error}")]
    try:
        declared = parse_meta_data(text)
    except ET.ParseError as e:
        return out + [("agent", f"{agent} meta-data is not valid XML: {e}")]
    names = [p.name for p in declared]
    for p in declared:
        if p.required and not params.get(p.name):
            out.append((f"params.{p.name}", f"required by {agent} (its meta-data) but missing"))
    for k in params:
        if k not in names and k not in bad:
            close = difflib.get_close_matches(k, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append((f"params.{k}", f"{agent} has no parameter {k!r}{hint}"))
    return out


def meta_data(path: Path) -> tuple[str | None, str]:
    """The agent's whole `meta-data` XML, or None and why not."""
    env = {**os.environ, "OCF_ROOT": str(ocf_root()), "OCF_RESOURCE_INSTANCE": "meta-data"}
    try:
        p = subprocess.run(
            [str(path), "meta-data"],
            capture_output=True,
            text=True,
            timeout=META_DATA_TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {META_DATA_TIMEOUT:g}s"
    except OSError as e:
        return None, str(e)
    if p.returncode != 0:
        return None, f"exit {p.returncode}: {p.stderr.strip()[-200:]}"
    return p.stdout, ""


class OcfResource:
    """One OCF agent instance: start/stop/monitor with the agent's exit codes mapped."""

    def __init__(self, cfg: OcfResourceConfig, index: int = 0, key: str = "resource"):
        self.cfg = cfg
        self.timeout = cfg.timeout
        m = _AGENT.match(cfg.agent)
        kind = m["type"] if m else cfg.agent
        # The instance name the agent keeps its state under: unchanged across
        # upgrades, or an agent would not find what an older daemon started.
        self.instance = f"failoverd-{kind}-{index}"
        self.key = key
        # The agent and the config's key path, never a parameter value (a password,
        # a private path): the name is published (failoverd/resources/base.py).
        self.label = f"ocf {cfg.agent}"
        self.name = resource_name(cfg, key)
        self.after = cfg.after  # what it starts after (config/order.py)
        self.path = agent_path(cfg.agent)

    def _action(self, action: str, env: Mapping[str, str]) -> CommandOutcome:
        if self.path is None:
            why = f"bad agent name {self.cfg.agent!r}"
            raise ResourceError(failure(self.key, action, self.label, why))
        full = {**env, **agent_env(self.cfg, self.instance)}
        return run_command([str(self.path), action], full, self.timeout)

    def _failed(self, outcome: CommandOutcome, action: str) -> ResourceError:
        # The agent's output often names its parameters (a device, a mount point,
        # once in a while a password): the local log only.
        log_command_failure(outcome, self.key, action)
        why = _meaning(outcome)
        return (ResourceTimeout if outcome.timed_out else ResourceError)(
            failure(self.key, action, self.label, why)
        )

    def start(self, env: Mapping[str, str]) -> None:
        started = time.monotonic()
        outcome = self._action("start", env)
        if outcome.returncode != OCF_SUCCESS:
            raise self._failed(outcome, "start")
        took_ms = round((time.monotonic() - started) * 1000)
        log.info("resource_started", resource=self.name, took_ms=took_ms)

    def stop(self, env: Mapping[str, str]) -> None:
        outcome = self._action("stop", env)
        if outcome.returncode not in (OCF_SUCCESS, OCF_NOT_RUNNING):
            raise self._failed(outcome, "stop")

    def kill(self, env: Mapping[str, str]) -> None:
        """The fast path of a fence is the agent's own stop. OCF has no kill action,
        and the agents failoverd is used with need none: Filesystem's stop unmounts
        at once when nothing uses the mount (the services above it were killed
        first) and otherwise signals the users itself (force_unmount, true by
        default), TERM, then KILL. An unmount is never skipped or made lazy: the
        peer mounts the same device next."""
        self.stop(env)

    def is_running(self, env: Mapping[str, str]) -> bool | None:
        rc = self._action("monitor", env).returncode
        if rc == OCF_SUCCESS:
            return True
        if rc == OCF_NOT_RUNNING:
            return False
        return None  # failed, or the agent could not tell (timeout): not "stopped"


def _meaning(outcome: CommandOutcome) -> str:
    rc = outcome.returncode
    if rc is None:
        return f"did not finish: {outcome.summary()}"
    return f"OCF exit {rc} ({OCF_CODES.get(rc, 'unknown')})"
