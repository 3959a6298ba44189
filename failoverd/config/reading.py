"""Reading the file. Each getter of Section validates one key and, on a problem,
records it in Findings (as ``FILE: key.path: message``) and returns a fallback, so
a single pass reports every problem."""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar, cast

import yaml

from failoverd.config.model import ConfigError

_T = TypeVar("_T")
_ABSENT = object()
# Cluster and member names become ZooKeeper node names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HINT = "expected a duration like 500ms, 3s, 10m or a number of seconds"
# No setting waits anywhere near this long; a longer one is a typo, and one of
# hundreds of digits would not even be a number (inf, or an OverflowError).
MAX_DURATION = 365 * 24 * 3600.0
# An integer literal longer than this is no setting (Python refuses to convert
# ones of more than 4300 digits at all); it reaches the getters as text.
_MAX_INT_DIGITS = 30
_REPR_LIMIT = 80


# Problems of an OCF agent's params on this machine, as (key, message): the parser
# cannot know which params an agent requires without running it, and config/ runs
# nothing, so the caller that may (checks/ocf.py) hands this in.
AgentCheck = Callable[[str, Mapping[str, str]], list[tuple[str, str]]]


class Findings:
    """Problems (the file is invalid) and notes (advice for the operator) of one file."""

    def __init__(self, path: str, agents: AgentCheck | None = None) -> None:
        self.path = path
        self.agents = agents
        self.problems: list[str] = []
        self.notes: list[str] = []
        self._bad: set[str] = set()

    def problem(self, at: str, message: str) -> None:
        self._bad.add(at)
        self.problems.append(f"{self.path}: {at}: {message}")

    def note(self, at: str, message: str) -> None:
        self.notes.append(f"{at}: {message}")

    def ok(self, *keys: str) -> bool:
        """No problem at these keys or their parents (so a cross-check would not repeat it)."""
        return not any(k == b or k.startswith(b + ".") for k in keys for b in self._bad)


class Section:
    """One mapping of the file at a key path such as ``fencing[1]``."""

    def __init__(self, found: Findings, at: str, data: object, keys: str) -> None:
        self.found, self.at = found, at
        self.data: Mapping[Any, Any] = data if isinstance(data, Mapping) else {}
        if not isinstance(data, Mapping):
            found.problem(at, f"expected a mapping, got {data!r}")
        allowed = sorted(keys.split())
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = (
                    f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
                )
                found.problem(self.key(str(key)), f"unknown key {key!r}{hint}")

    def key(self, name: str) -> str:
        return f"{self.at}.{name}" if self.at else name

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def section(self, name: str, keys: str) -> Section:
        value = self.data.get(name)
        return Section(self.found, self.key(name), {} if value is None else value, keys)

    def items(self, name: str) -> list[tuple[str, object]]:
        value = self._get(name, required=False)
        if value is _ABSENT:
            return []
        if not isinstance(value, list):
            return self._wrong(name, "expected a list", value, [])
        return [(f"{self.key(name)}[{i}]", item) for i, item in enumerate(value)]

    def text(self, name: str, default: str | None = None) -> str:
        """A non-empty string; required when there is no default."""
        value = self._get(name, required=default is None)
        if value is _ABSENT:
            return default or ""
        if isinstance(value, str) and value.strip():
            return value
        return self._wrong(name, "expected a non-empty string", value, default or "")

    def name(self, name: str) -> str:
        value = self.text(name)
        if value and (not NAME_PATTERN.fullmatch(value) or value in (".", "..")):
            msg = "expected letters, digits, '_', '.' or '-' (it names a ZooKeeper node)"
            return self._wrong(name, msg, value, value)
        return value

    def integer(self, name: str, default: int | None, low: int, high: int | None = None) -> int:
        value = self._get(name, required=default is None)
        if value is _ABSENT:
            return default or 0
        if is_int(value) and value >= low and (high is None or value <= high):
            return cast(int, value)
        wanted = f"between {low} and {high}" if high is not None else f"of at least {low}"
        return self._wrong(name, f"expected an integer {wanted}", value, default or 0)

    def duration(self, name: str, default: float, zero_ok: bool = False) -> float:
        value = self._get(name, required=False)
        if value is _ABSENT:
            return default
        seconds = _seconds(value)
        if seconds is None:
            return self._wrong(name, _DURATION_HINT, value, default)
        if seconds > MAX_DURATION:
            return self._wrong(name, "must be at most 365 days", value, default)
        if seconds < 0 or (seconds == 0 and not zero_ok):
            limit = "must not be negative" if zero_ok else "must be greater than 0"
            return self._wrong(name, limit, value, default)
        return seconds

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name, required=False)
        if value is _ABSENT or isinstance(value, bool):
            return default if value is _ABSENT else cast(bool, value)
        return self._wrong(name, "expected true or false", value, default)

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        value = self._get(name, required=False)
        if value is _ABSENT:
            return default
        if value in options:
            return cast(str, value)
        return self._wrong(name, f"expected one of {', '.join(options)}", value, default)

    def address(self, name: str) -> str:
        """A host name or IP address. It goes onto command lines (the ssh probe,
        `{address}` in a fence command), where one starting with '-' would be read
        as an option."""
        value = self.text(name)
        if value.startswith("-"):
            return self._wrong(
                name, "must not start with '-' (a program would read an option)", value, value
            )
        return value

    def argv(self, name: str, required: bool = True) -> tuple[str, ...] | None:
        """A command as a list of strings; it is exec'd directly, never through a shell."""
        value = self._get(name, required=required)
        if value is _ABSENT:
            return () if required else None
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        return self._wrong(name, "expected a non-empty list of strings", value, ())

    def ports(self, name: str) -> tuple[int, ...] | None:
        value = self._get(name, required=False)
        if value is _ABSENT:
            return None
        if isinstance(value, list) and all(is_int(v) and 1 <= v <= 65535 for v in value):
            return tuple(value)
        return self._wrong(name, "expected a list of port numbers (1-65535)", value, ())

    def _get(self, name: str, required: bool) -> Any:
        if self.has(name):
            return self.data[name]
        if required:
            self.found.problem(self.key(name), "is required")
        return _ABSENT

    def _wrong(self, name: str, expected: str, value: object, fallback: _T) -> _T:
        self.found.problem(self.key(name), f"{expected}, got {_short(value)}")
        return fallback


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: object) -> str:
    """repr for a message, cut short: a value may be thousands of characters."""
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else f"{text[:60]}... ({len(text)} characters)"


def _seconds(value: object) -> float | None:
    """Seconds, or None when `value` is no finite duration (too big ints included)."""
    if isinstance(value, bool):
        return None
    seconds = None
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
            seconds = float(m[1]) * _UNIT_SECONDS[m[2] or "s"]
    except OverflowError:  # an int beyond any float
        return None
    return seconds if seconds is not None and math.isfinite(seconds) else None


def typed_item(
    found: Findings, at: str, value: object, schemas: Mapping[str, str]
) -> tuple[str, Section] | None:
    """A list item whose ``type`` key decides which other keys it may have."""
    kinds = ", ".join(schemas)
    if not isinstance(value, Mapping):
        found.problem(at, f"expected a mapping with a 'type' ({kinds}), got {value!r}")
        return None
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in schemas:
        # Still name the item's other keys that no type knows, so `{tyype: command}`
        # reads as the typo it is rather than only as a missing type.
        Section(found, at, value, " ".join({"type", *" ".join(schemas.values()).split()}))
        found.problem(f"{at}.type", f"expected one of {kinds}, got {kind!r}")
        return None
    return kind, Section(found, at, value, f"type {schemas[kind]}")


def secs(seconds: float) -> str:
    """A duration as messages write it: 1.5 -> '1.5s'."""
    return f"{seconds:g}s"


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice is an error: plain YAML keeps the
    last one, and a second ``fencing:`` must not silently replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        """An integer too long to be a setting stays text, so its key's getter
        reports it (``FILE: key: ...``) instead of int() raising for the file."""
        text = str(self.construct_scalar(node))
        if len(text) > _MAX_INT_DIGITS:
            return text
        return super().construct_yaml_int(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def read_yaml(path: str) -> Mapping[Any, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from e
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: not UTF-8 text: {e.reason} at byte {e.start}"]) from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{path}: {where}{e.problem or e.context}"]) from e
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: {e}"]) from e
    if data is None:
        raise ConfigError([f"{path}: the file is empty"])
    if not isinstance(data, Mapping):
        raise ConfigError([f"{path}: expected a mapping at the top level, got {data!r:.60}"])
    return data


def check_private(found: Findings, at: str, path: str) -> bool:
    """A secret others can read is no secret; one others can write can be replaced."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        how = "readable" if mode & 0o044 else "writable"
        found.problem(at, f"{path} is {how} by others (mode {mode:04o}): chmod 600 it")
    return not mode & 0o077
