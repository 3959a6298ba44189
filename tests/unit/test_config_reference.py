"""docs/config-reference.md, the schema it is rendered from and the parser agree:
the page is the rendering, every documented key is accepted at its example value,
a key the schema lacks is refused, the parser reads and allows no key the schema
lacks, documented defaults are what the parser falls back to and documented
bounds are the parser's."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from failoverd.config import Config, ConfigError, load_config
from failoverd.config.reading import Section
from failoverd.config.reference import EXAMPLE_NAME, duration, example, render
from failoverd.config.schema import TABLES, TOP, Key, Required, Rule, Table
from tests.support.certs import CA
from tests.support.checkout import REPO

REFERENCE = REPO / "docs" / "config-reference.md"


def _id(t: Table) -> str:
    return f"{t.path or 'top'}:{t.kind}" if t.kind else t.path or "top"


SECTIONS = [k.name for k in TOP.keys if k.example is None]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Stand-ins for the files the examples name and the parser opens."""
    d = tmp_path / "etc"
    d.mkdir()
    ca = CA.make("reference test CA")
    cert, key = ca.issue(["localhost"], d / "zk-client.pem", d / "zk-client.key")
    (d / "zk-credential").write_text("failoverd:secret\n")
    (d / "fence_key").write_text("not a real key\n")
    (d / "known_hosts").write_text("")
    for name in ("zk-credential", "fence_key"):
        (d / name).chmod(0o600)
    return {
        "/etc/failoverd/zk-credential": str(d / "zk-credential"),
        "/etc/failoverd/zk-ca.pem": ca.write(d / "zk-ca.pem"),
        "/etc/failoverd/zk-client.pem": cert,
        "/etc/failoverd/zk-client.key": key,
        "/etc/failoverd/fence_key": str(d / "fence_key"),
        "/etc/failoverd/known_hosts": str(d / "known_hosts"),
    }


def _swap(value: Any, files: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _swap(v, files) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, files) for v in value]
    return files.get(value, value) if isinstance(value, str) else value


def _write(tmp_path: Path, data: dict[str, Any], files: Mapping[str, str]) -> str:
    path = tmp_path / "failoverd.yaml"
    path.write_text(yaml.safe_dump(_swap(data, files), sort_keys=False))
    return str(path)


def _base(needs_device: bool = False) -> dict[str, Any]:
    """The file with only its required keys, from the schema."""
    data = example(required_only=True)
    if needs_device:  # lease-wait is valid only with a watchdog device
        data["watchdog"] = example("watchdog")
    return data


def _place(data: dict[str, Any], t: Table, body: dict[str, Any]) -> str:
    """Put `body` where table `t`'s mapping goes; return its key path as messages write it."""
    if not t.path:
        data.update(body)
        return ""
    node, at = data, ""
    parts = t.path.split(".")
    for i, part in enumerate(parts):
        name = EXAMPLE_NAME if part == "<name>" else part.removesuffix("[]")
        at = f"{at}.{name}" if at else name
        if i == len(parts) - 1:
            node[name] = [body] if part.endswith("[]") else body
            return f"{at}[0]" if part.endswith("[]") else at
        node = node.setdefault(name, {})
    raise AssertionError(t.path)


def _problems(path: str, why: str) -> list[str]:
    try:
        load_config(path)
    except ConfigError as e:
        return e.problems
    pytest.fail(f"the parser took {why}")


def test_the_committed_reference_is_the_rendered_schema() -> None:
    assert REFERENCE.read_text() == render(), (
        "docs/config-reference.md is stale: "
        "run python -m failoverd.config.reference > docs/config-reference.md"
    )


@pytest.mark.parametrize("section", SECTIONS)
def test_every_documented_key_of_a_section_is_accepted_at_its_example(
    tmp_path: Path, files: dict[str, str], section: str
) -> None:
    data = _base(needs_device=section == "fencing")
    data[section] = example()[section]
    text = Path(_write(tmp_path, data, files)).read_text()
    for t in TABLES:
        if t.path.split(".")[0].removesuffix("[]") == section:
            keys = [k.name for k in t.keys if not k.spelling_of]
            assert all(re.search(rf"^\s*-? *'?{k}'?:", text, re.M) for k in keys), t
    load_config(str(tmp_path / "failoverd.yaml"))


def test_the_file_that_sets_every_key_loads(tmp_path: Path, files: dict[str, str]) -> None:
    config = load_config(_write(tmp_path, example(), files))
    assert len(config.fencing) == 3 and len(config.health.checks) == 5


_OLD_SPELLINGS = [(t, k) for t in TABLES for k in t.keys if k.spelling_of]


@pytest.mark.parametrize(
    ("table", "key"), _OLD_SPELLINGS, ids=[f"{_id(t)}.{k.name}" for t, k in _OLD_SPELLINGS]
)
def test_an_old_spelling_is_accepted_in_place_of_its_key(
    tmp_path: Path, files: dict[str, str], table: Table, key: Key
) -> None:
    data = _base(needs_device=table.kind == "lease-wait")
    body = example(table.path, table.kind, required_only=True)
    body[key.name] = body.pop(key.spelling_of, key.example)
    _place(data, table, body)
    load_config(_write(tmp_path, data, files))


@pytest.mark.parametrize("table", TABLES, ids=_id)
def test_a_key_the_schema_lacks_is_refused_naming_file_and_key(
    tmp_path: Path, files: dict[str, str], table: Table
) -> None:
    data = _base(needs_device=table.kind == "lease-wait")
    body = {**example(table.path, table.kind, required_only=True), "not_in_schema": 1}
    at = _place(data, table, body)
    path = _write(tmp_path, data, files)
    key = f"{at}.not_in_schema" if at else "not_in_schema"
    found = _problems(path, f"{key}, a key the schema lacks")
    assert any(p.startswith(f"{path}: {key}: unknown key 'not_in_schema'") for p in found)


class _Reads(dict[Any, Any]):
    """A section's mapping that notes every key the parser looks up."""

    def __init__(self, data: Mapping[Any, Any], at: str, seen: set[tuple[str, str]]) -> None:
        super().__init__(data)
        self.at, self.seen = at, seen

    def get(self, key: Any, default: Any = None) -> Any:
        self.seen.add((self.at, str(key)))
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.seen.add((self.at, str(key)))
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.seen.add((self.at, str(key)))
        return super().__contains__(key)


def _schema_path(at: str) -> str:
    """`fencing[2]` -> `fencing[]`, `peers.mail2` -> `peers.<name>`."""
    return re.sub(r"\[\d+\]", "[]", re.sub(r"^peers\.[^.]+", "peers.<name>", at))


def test_the_parser_allows_and_reads_exactly_the_schemas_keys(
    tmp_path: Path, files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed: list[tuple[str, str, set[str]]] = []
    reads: set[tuple[str, str]] = set()
    init = Section.__init__

    def noting(self: Section, found: Any, at: str, data: object, keys: str) -> None:
        init(self, found, at, data, keys)
        kind = self.data.get("type", "") if isinstance(data, Mapping) else ""
        allowed.append((_schema_path(at), str(kind), set(keys.split())))
        self.data = _Reads(self.data, _schema_path(at), reads)

    monkeypatch.setattr(Section, "__init__", noting)
    load_config(_write(tmp_path, example(), files))

    schema = {(t.path, t.kind): {k.name for k in t.keys} for t in TABLES}
    # The parser's allowed keys are the schema's (a typed item's `type` is implied).
    assert {(p, k) for p, k, _ in allowed} == set(schema), "a mapping the schema lacks"
    for path, kind, keys in allowed:
        where = f"{path or 'the top level'}{f' type {kind}' if kind else ''}"
        wanted = schema[path, kind]
        assert keys | ({"type"} if kind else set()) == wanted, f"{where}: allowed keys differ"
    # And it reads no key that is not documented where it reads it.
    documented = {(t.path, k.name) for t in TABLES for k in t.keys}
    assert reads - documented == set(), "keys the parser reads that the schema lacks"


def _parsed(config: Config, t: Table) -> object:
    """The parsed object that table `t`'s mapping becomes (each list holds one item)."""
    obj: Any = config
    for part in t.path.split(".") if t.path else []:
        obj = getattr(obj, part.removesuffix("[]"), None) if part != "<name>" else obj[0]
        obj = obj[0] if part.endswith("[]") else obj
    return obj


# Beyond the required keys: a watchdog with neither systemd nor a device is off.
_SWITCHED_ON = {"watchdog": {"device": "/dev/watchdog"}}


@pytest.mark.parametrize("table", TABLES, ids=_id)
def test_each_documented_default_is_what_the_parser_falls_back_to(
    tmp_path: Path, files: dict[str, str], table: Table
) -> None:
    data = _base(needs_device=table.kind == "lease-wait")
    body = example(table.path, table.kind, required_only=True)
    body |= _SWITCHED_ON.get(table.path, {})
    _place(data, table, body)
    obj = _parsed(load_config(_write(tmp_path, data, files)), table)
    for k in table.keys:
        if isinstance(k.default, Required | Rule) or k.name in body or k.spelling_of:
            continue
        assert getattr(obj, k.name) == k.default, (table.path, table.kind, k.name)


def _limits(k: Key) -> Iterator[tuple[object, bool]]:
    """Values at and beyond the documented bounds, and whether the parser must take them."""
    if k.name == "type":
        return
    if k.options:
        for o in k.options:
            yield ([o] if k.type.startswith("list") else o), True
        yield ["no-such-option"] if k.type.startswith("list") else "no-such-option", False
    if k.type == "integer":
        assert k.low is not None
        yield int(k.low), True
        yield int(k.low) - 1, False
        if k.high is not None:
            yield int(k.high), True
            yield int(k.high) + 1, False
    if k.type == "duration":
        if k.low and k.high:
            yield duration(k.low), True
            yield duration(k.low * 0.9), False
            yield duration(k.high), True
            yield duration(k.high * 1.1), False
        else:
            yield "0s", k.low == 0


_BOUNDED = [(t, k) for t in TABLES for k in t.keys if list(_limits(k))]


@pytest.mark.parametrize(
    ("table", "key"), _BOUNDED, ids=[f"{_id(t)}.{k.name}" for t, k in _BOUNDED]
)
def test_the_documented_bounds_are_the_parsers(
    tmp_path: Path, files: dict[str, str], table: Table, key: Key
) -> None:
    for value, ok in _limits(key):
        data = _base(needs_device=table.kind == "lease-wait")
        body = copy.deepcopy(example(table.path, table.kind, required_only=True))
        body.pop(key.spelling_of, None)  # an old spelling stands in for its key
        at = _place(data, table, {**body, key.name: value})
        path = _write(tmp_path, data, files)
        if ok:
            load_config(path)
        else:
            name = f"{at}.{key.name}" if at else key.name
            found = _problems(path, f"{name}: {value!r}, beyond the documented bounds")
            # named as itself, or as its item for a list (hooks[0].on[0])
            assert any(p.startswith((f"{path}: {name}: ", f"{path}: {name}[")) for p in found)
