"""Every program the config makes root run, in one list, so that one ownership
rule (preflight.py's owner_problems) covers them all: a program left out of the
list is one whose writer runs code as root, unchecked.

Root runs: resources' start/stop/status, command health checks, fencing argv and
check_argv, hooks, and each OCF agent. When a program is an interpreter (`sh`,
`bash`, `python3`, `perl`, ...; through `env` too) the file it is handed is what
really runs, so that script is listed as well; inline code (`sh -c`, `python3 -c`,
`perl -e`) is no file and lists nothing more.
"""

from __future__ import annotations

import os
import re
import shutil

from failoverd.config import CommandFencerConfig, CommandResourceConfig, Config, OcfResourceConfig
from failoverd.resources.ocf import agent_path

# Interpreter -> (short options that make the next text inline code, short options
# that take an argument). What follows the options is the script the interpreter runs.
_SHELL = ("c", "oO")
_INTERPRETERS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(("sh", "bash", "dash", "ash", "ksh", "mksh", "zsh"), _SHELL),
    "python": ("cm", "WX"),
    "perl": ("eE", ""),  # -I, -M and the like take their argument joined
    "ruby": ("e", "IrCE"),
    "node": ("ep", "r"),
    "lua": ("e", "l"),
    "awk": ("", "vF"),  # awk's program is inline unless -f names a file: see _script
}
_PYTHON = re.compile(r"^python[0-9.]*$")

Program = tuple[str, str, str]  # (key path, file, "program" or "script")


def root_argvs(config: Config) -> list[tuple[str, tuple[str, ...]]]:
    """(key path, argv) of every command the daemon may exec, in file order: what
    host.py finds installed and root_programs holds to the ownership rule."""
    out: list[tuple[str, tuple[str, ...] | None]] = []  # check_argv may be unset
    for i, c in enumerate(config.health.checks):
        if c.type == "command":
            out.append((f"health.checks[{i}].argv", c.argv))
    for i, r in enumerate(config.resources):
        if isinstance(r, CommandResourceConfig):
            keys = ("start", "stop", "status", "kill")
            out += [(f"resources[{i}].{k}", getattr(r, k)) for k in keys]
    for i, f in enumerate(config.fencing):
        if isinstance(f, CommandFencerConfig):
            out += [(f"fencing[{i}].argv", f.argv), (f"fencing[{i}].check_argv", f.check_argv)]
    out += [(f"hooks[{i}].argv", h.argv) for i, h in enumerate(config.hooks)]
    return [(at, argv) for at, argv in out if argv]


def root_programs(config: Config) -> list[Program]:
    """(key path, file, what) for every program and script root runs under this config:
    the commands in file order, then the OCF agents. A program not found on PATH is
    left out (host.py reports it missing)."""
    out: list[Program] = []
    for at, argv in root_argvs(config):
        out += _argv_programs(at, argv)
    for i, r in enumerate(config.resources):
        if isinstance(r, OcfResourceConfig) and (agent := agent_path(r.agent)) is not None:
            out.append((f"resources[{i}].agent", str(agent), "program"))
    return out


def _argv_programs(at: str, argv: tuple[str, ...], first: int = 0) -> list[Program]:
    """The program argv[first] names and, for an interpreter, the script it is handed."""
    if first >= len(argv):
        return []
    key = at if first == 0 else f"{at}[{first}]"
    prog = argv[first] if os.path.isabs(argv[first]) else shutil.which(argv[first])
    out: list[Program] = [] if prog is None else [(key, prog, "program")]
    name = os.path.basename(argv[first])
    if name == "env":
        return out + _argv_programs(at, argv, _after_env(argv, first + 1))
    if _PYTHON.match(name):
        name = "python"
    if name not in _INTERPRETERS:
        return out
    script = _script(argv, first + 1, *_INTERPRETERS[name], awk=name == "awk")
    if script is not None:
        path = argv[script] if os.path.isabs(argv[script]) else os.path.abspath(argv[script])
        out.append((f"{at}[{script}]", path, "script"))
    return out


def _after_env(argv: tuple[str, ...], i: int) -> int:
    """The index of the program `env` runs: past its options and NAME=VALUE words."""
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return i + 1
        if word in ("-u", "--unset", "-C", "--chdir"):
            i += 2
        elif word.startswith("-") or "=" in word:
            i += 1
        else:
            return i
    return i


def _script(
    argv: tuple[str, ...], i: int, inline: str, with_arg: str, awk: bool = False
) -> int | None:
    """The index of the script an interpreter runs (getopt's reading of its short
    options), or None when the code is inline or no script is given."""
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if word.startswith("--"):
            i += 1
            continue
        if not (word.startswith("-") or word.startswith("+")) or len(word) == 1:
            break
        for n, flag in enumerate(word[1:], start=1):
            if awk and flag == "f":
                return i + 1 if n == len(word) - 1 and i + 1 < len(argv) else None
            if flag in inline:
                return None
            if flag in with_arg:
                i += 1 if n < len(word) - 1 else 2
                break
        else:
            i += 1
    if awk:
        return None  # the first word after awk's options is its program text
    return i if i < len(argv) else None
