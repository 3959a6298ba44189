"""The configuration key reference, rendered from schema.py:

    python -m failoverd.config.reference > docs/config-reference.md

tests/unit/test_config_reference.py fails when the committed page and this
rendering differ, and loads example() to prove the parser takes every key."""

from __future__ import annotations

import sys
from typing import Any

import yaml

from failoverd.config.schema import TABLES, TOP, Key, Required, Rule, Table, tables

# The name an example gives a mapping keyed by names (peers.<name>).
EXAMPLE_NAME = "mail2"

_INTRO = """\
# Configuration key reference

<!-- Generated from failoverd/config/schema.py by
     python -m failoverd.config.reference > docs/config-reference.md
     Do not edit by hand: a unit test fails when the two differ. -->

Every key of a node's config file (`/etc/failoverd/failoverd.yaml`, or the file
`--config` or `$FAILOVERD_CONFIG` names), section by section. The parser reads its
allowed keys from the same table this page is made from, so a key that is not here
is refused.

* A problem is reported as `FILE: key.path: message`, with every problem of the file
  at once, and failoverd exits with status 2. An unknown key is such a problem.
* Key paths are written as the messages write them: `fencing[1].timeout` is the
  `timeout` of the second fencing method. Here `[]` stands for any item of a list
  and `<name>` for any key of a mapping of names.
* A **duration** is a number with a unit, `500ms`, `3s`, `10m` or `1h`, or a plain
  number of seconds; none may be longer than 365 days.
* An **argv** is a list of strings, the program first; it is run directly, never
  through a shell.
* **required** means required whenever the mapping it belongs to is present;
  *unset* means that leaving the key out turns the feature off.
"""


def render() -> str:
    out = [_INTRO]
    done: list[Table] = []
    out += _section("Top level", TOP, done)
    for key in TOP.keys:
        if key.example is not None:
            continue  # a scalar of the top level: its row above is all there is
        nested = _nested(key.name)
        if nested[0].path == key.name:  # a mapping: its own table opens the section
            out += _section(f"`{key.name}`", nested.pop(0), done)
        else:  # a list or a mapping of names: only its items have keys
            out += [f"## `{key.name}`\n", f"{key.doc}\n"]
        for t in nested:
            out += _section(_title(t), t, done, level=3)
    missing = [t for t in TABLES if t not in done]
    if missing:
        raise LookupError(f"tables under no top-level key: {[t.path for t in missing]}")
    out += [
        "## A file that sets every key\n",
        "Each key at its example value; the files it names must exist, except "
        "`key_file` and `known_hosts`, which are only noted when they do not.\n",
        "```yaml",
        yaml.safe_dump(example(), sort_keys=False, width=88).rstrip(),
        "```",
    ]
    return "\n".join(out) + "\n"


def _nested(top: str) -> list[Table]:
    """The tables of one top-level key: its own, then those nested in it."""
    return [t for t in TABLES if t.path.split(".")[0].removesuffix("[]") == top and t.path]


def _title(t: Table) -> str:
    return f"`{t.path}` type `{t.kind}`" if t.kind else f"`{t.path}`"


def _section(title: str, t: Table, done: list[Table], level: int = 2) -> list[str]:
    done.append(t)
    rows = [
        f"{'#' * level} {title}\n",
        f"{t.doc}\n",
        "| Key | Type | Default | Allowed | Example | Description |",
        "|---|---|---|---|---|---|",
    ]
    for k in t.keys:
        cells = (f"`{k.name}`", k.type, _default(k), _allowed(k), _example(k), k.doc)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return [*rows, ""]


def duration(seconds: float) -> str:
    """A duration as a file would write it: 0.75 -> 750ms, 600 -> 10m."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _value(k: Key, value: object) -> str:
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    if k.type == "duration" and isinstance(value, int | float):
        return f"`{duration(value)}`"
    if value == ():
        return "none"
    return f"`{_flow(value)}`"


def _default(k: Key) -> str:
    if k.spelling_of:
        return f"old spelling of `{k.spelling_of}`"
    if isinstance(k.default, Required):
        return "**required**"
    if k.default is None:
        return "*unset*"
    if isinstance(k.default, Rule):
        return k.default.text
    return _value(k, k.default)


def _allowed(k: Key) -> str:
    limits = []
    if k.options:
        limits.append(", ".join(f"`{o}`" for o in k.options))
    if k.type == "integer":
        if k.low is not None and k.high is not None:
            limits.append(f"{int(k.low)} to {int(k.high)}")
        elif k.low is not None:
            limits.append(f"at least {int(k.low)}")
    if k.type == "duration":
        if k.low and k.high:
            limits.append(f"{duration(k.low)} to {duration(k.high)}")
        else:
            limits.append("0 or more" if k.low == 0 else "more than 0")
    if k.note:
        limits.append(k.note)
    return "; ".join(limits)


def _example(k: Key) -> str:
    return "" if k.example is None else f"`{_flow(k.example)}`"


def _flow(value: object) -> str:
    """`value` as YAML writes it inline."""
    text = yaml.safe_dump({"k": value}, default_flow_style=True, width=1000).strip()
    return text.removeprefix("{k: ").removesuffix("}")


def example(path: str = "", kind: str = "", required_only: bool = False) -> dict[str, Any]:
    """A mapping that sets every key of the table at `path` (and every table nested in
    it) to its example value; example() is a whole file. With `required_only`, only
    the required keys, and a list has one item, of its first type. An old spelling
    is left out: giving it with the key it spells is an error."""
    (table,) = [t for t in tables(path) if t.kind == kind]
    out: dict[str, Any] = {}
    for k in table.keys:
        if (required_only and not k.required) or k.spelling_of:
            continue
        at = f"{path}.{k.name}" if path else k.name
        if k.example is not None:
            out[k.name] = k.example
        elif any(t.path == at for t in TABLES):
            out[k.name] = example(at, required_only=required_only)
        elif any(t.path == f"{at}[]" for t in TABLES):
            items = tables(f"{at}[]")[:1] if required_only else tables(f"{at}[]")
            out[k.name] = [example(f"{at}[]", t.kind, required_only) for t in items]
        else:
            out[k.name] = {EXAMPLE_NAME: example(f"{at}.<name>", required_only=required_only)}
    return out


if __name__ == "__main__":
    sys.stdout.write(render())
