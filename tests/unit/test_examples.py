"""Every config example works as written: the files in deploy/, the hooks blocks in
the example scripts' headers, and every ```yaml block of README.md, docs/ and
deploy/'s READMEs, checked from their text.

The check is the part of `failoverd --check` that does not depend on the machine
it runs on: the parser and validator (failoverd.config.load_config: every key,
its type and range, the timing budget) plus the one start-up rule that reads only
the config (ZooKeeper auth or an explicit `insecure: true`). What depends on this
host (programs and units installed, OCF agents, owners and modes, the state dir)
is left out; test_host_checks and test_ocf hold the recipe to those. The parser
reads one file itself, `zookeeper.auth.credential_file`: it gets a stand-in.

A block with a top-level `node:` key is a whole config. A block with a top-level
`operator:` key is an operator's failoverctl config, parsed whole by
failoverd.config.operator's loader, its `operator.credential` replaced by a
stand-in (mode 0600) that failoverctl's own reader must accept. Any other block
is a fragment, checked on top of tests/fixtures/docs-base.yaml: its top-level
keys go over the base's, mappings merged key by key. So YAML that is not
failoverd's config (or a deliberately wrong example) must not use the ```yaml fence.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from failoverd.checks.preflight import zk_access_problems
from failoverd.cli.identity import read_operator_credential
from failoverd.config import ConfigError, load_config
from failoverd.config.model import OperatorConfig
from failoverd.config.operator import is_operator_config, load_failoverctl_config
from failoverd.config.reading import read_yaml
from tests.support.certs import CA
from tests.support.checkout import REPO

BASE = REPO / "tests" / "fixtures" / "docs-base.yaml"
EXAMPLES = REPO / "deploy" / "examples"
FENCE_OPEN = re.compile(r"^(?P<indent>\s*)```yaml\s*$")
FENCE_CLOSE = re.compile(r"^\s*```\s*$")
CREDENTIAL = re.compile(r"credential_file:\s*[\"']?(?P<path>/[^\s,}\"']+)")
# An operator config's operator.credential: absolute, ~/..., or relative to the file.
OPERATOR_CREDENTIAL = re.compile(r"\bcredential:\s*[\"']?(?P<path>[^\s,}\"'#]+)")
# zookeeper.tls's files: each only has to exist (and the key be private) for the check.
TLS_FILE = re.compile(r"\b(?:ca|cert|key):\s*[\"']?(?P<path>/[^\s,}\"']+)")


@dataclass(frozen=True)
class Example:
    where: str  # file:line of its first line, for the test's id and its message
    text: str


def fenced_blocks(path: Path) -> Iterator[Example]:
    """The ```yaml blocks of a markdown file, dedented to their fence."""
    lines = path.read_text().splitlines()
    start, indent = -1, ""
    for n, line in enumerate(lines):
        if start < 0 and (m := FENCE_OPEN.match(line)):
            start, indent = n + 1, m["indent"]
        elif start >= 0 and FENCE_CLOSE.match(line):
            body = [x[len(indent) :] if x.startswith(indent) else x for x in lines[start:n]]
            yield Example(f"{path.relative_to(REPO)}:{start + 1}", "\n".join(body) + "\n")
            start = -1


def commented_hooks(path: Path) -> Iterator[Example]:
    """A `hooks:` block written as a comment (a script's usage, an optional block)."""
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines):
        m = re.fullmatch(r"#(?P<indent>\s*)hooks:\s*", line)
        if not m:
            continue
        strip = 1 + len(m["indent"])
        body = ["hooks:"]
        for more in lines[n + 1 :]:
            if not re.match(rf"#{m['indent']}\s+\S", more):
                break
            body.append(more[strip:])
        yield Example(f"{path.relative_to(REPO)}:{n + 1}", "\n".join(body) + "\n")


def examples() -> list[Example]:
    found = []
    for path in sorted([*REPO.glob("deploy/**/*.yaml"), *REPO.glob("deploy/**/*.yml")]):
        found.append(Example(f"{path.relative_to(REPO)}:1", path.read_text()))
    for path in sorted([*EXAMPLES.glob("hooks/*"), EXAMPLES / "failoverd.yaml"]):
        found += commented_hooks(path)
    docs = [REPO / "README.md", *REPO.glob("docs/**/*.md"), *REPO.glob("deploy/**/*.md")]
    for path in sorted(p for p in docs if p.is_file()):
        found += fenced_blocks(path)
    return found


def merged(base: Any, over: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        return {**base, **{k: merged(base.get(k), v) for k, v in over.items()}}
    return over


def with_stand_in_credentials(text: str, tmp_path: Path) -> str:
    stand_in = tmp_path / "zk.secret"
    stand_in.write_text("failoverd:example-password\n")
    os.chmod(stand_in, 0o600)
    for path in {m["path"] for m in CREDENTIAL.finditer(text)}:
        text = text.replace(path, str(stand_in))
    for m in OPERATOR_CREDENTIAL.finditer(text):
        text = text.replace(m.group(0), m.group(0).replace(m["path"], str(stand_in)))
    tls = {m.group(0).split(":")[0]: m["path"] for m in TLS_FILE.finditer(text)}
    if tls:  # real PEM files: the check loads them
        ca = CA.make("example-ca")
        cert, key = ca.issue(["localhost"], tmp_path / "zk-client.pem", tmp_path / "zk-client.key")
        os.chmod(key, 0o600)
        stand_ins = {"ca": ca.write(tmp_path / "zk-ca.pem"), "cert": cert, "key": key}
        for kind, path in tls.items():
            text = text.replace(path, stand_ins[kind])
    return text


def check_text(text: str, tmp_path: Path) -> list[str]:
    """The problems the check finds in one example's text ([] when it is valid)."""
    path = tmp_path / "failoverd.yaml"
    path.write_text(with_stand_in_credentials(text, tmp_path))
    try:
        data = read_yaml(str(path))
        if is_operator_config(data):
            return operator_problems(str(path))
        if "node" not in data:  # a fragment: on top of the base config
            base = BASE.read_text()
            path.write_text(with_stand_in_credentials(base, tmp_path))
            path.write_text(yaml.safe_dump(merged(read_yaml(str(path)), data)))
        return zk_access_problems(load_config(str(path)))
    except ConfigError as e:
        return [p.replace(f"{path}: ", "") for p in e.problems]


def operator_problems(path: str) -> list[str]:
    """An operator config: failoverctl's loader, then its reader of the credential."""
    config = load_failoverctl_config(path)
    if not isinstance(config, OperatorConfig):
        return [f"not read as an operator config: {config!r:.60}"]
    if config.credential is not None:
        try:
            read_operator_credential(config.credential)
        except ValueError as e:
            return [f"operator.credential: {e}"]
    return []


ALL = examples()


@pytest.mark.parametrize("example", ALL, ids=[e.where for e in ALL])
def test_example_passes_the_config_check_as_written(example: Example, tmp_path: Path) -> None:
    assert check_text(example.text, tmp_path) == [], f"{example.where}:\n{example.text}"


def test_the_examples_found_include_each_kind() -> None:
    wheres = [e.where for e in ALL]
    assert "deploy/examples/failoverd.yaml:1" in wheres
    assert "deploy/examples/postfix-dovecot/failoverd.yaml:1" in wheres
    assert any(w.startswith("deploy/examples/hooks/page-webhook:") for w in wheres)
    assert any(w.startswith("deploy/examples/failoverd.yaml:") and w != wheres[0] for w in wheres)
    assert any(w.startswith("docs/") for w in wheres)


def test_the_check_fails_a_bare_on_key_and_an_unknown_key(tmp_path: Path) -> None:
    hooks = "hooks:\n  - {on: [promoted], argv: [/usr/local/lib/failoverd/page-webhook]}\n"
    assert check_text(hooks, tmp_path) == [
        "hooks[0]: a bare 'on:' key is read by YAML as true: write 'events:' instead"
    ]
    assert check_text("zookeeper:\n  sesion_timeout: 3s\n", tmp_path) == [
        "zookeeper.sesion_timeout: unknown key 'sesion_timeout'; did you mean 'session_timeout'?"
    ]


OPERATOR = """\
cluster: mail
members: [mail1, mail2]
zookeeper:
  hosts: zk1:2281,zk2:2281,zk3:2281
  auth: {scheme: sasl}
operator:
  credential: ~/.config/failoverd/zk-credential
"""


def test_an_operator_block_is_read_as_an_operator_config(tmp_path: Path) -> None:
    assert check_text(OPERATOR, tmp_path) == []
    # The loader is the one that judges it: a node's secret in it is named.
    secret = OPERATOR.replace("{scheme: sasl}", "{scheme: sasl, credential_file: /etc/x}")
    assert [p.split(":")[0] for p in check_text(secret, tmp_path)] == [
        "zookeeper.auth.credential_file"
    ]
    assert [p.split(":")[0] for p in check_text(OPERATOR.replace("members", "nodes"), tmp_path)]


def test_a_fragment_merges_into_the_base_and_a_whole_config_stands_alone(
    tmp_path: Path,
) -> None:
    # zookeeper.auth alone keeps the base's hosts; a whole config without auth fails.
    assert check_text("zookeeper:\n  root: /failoverd\n", tmp_path) == []
    whole = BASE.read_text().replace(
        "  auth: {scheme: digest, credential_file: /etc/failoverd/zk.secret}\n", ""
    )
    assert "node:" in whole and "auth" not in whole
    assert [p.split(":")[0] for p in check_text(whole, tmp_path)] == ["zookeeper.auth"]


def commands(data: Any) -> Iterator[str]:
    """argv[0] of every command an example names (a list starting with a path)."""
    if isinstance(data, Mapping):
        for value in data.values():
            yield from commands(value)
    elif isinstance(data, list):
        if data and isinstance(data[0], str) and data[0].startswith("/usr/local/"):
            yield data[0]
        for value in data:
            yield from commands(value)


def test_every_script_an_example_names_is_shipped() -> None:
    shipped = {p.name for p in EXAMPLES.rglob("*") if p.is_file() and os.access(p, os.X_OK)}
    named = {
        (e.where, program)
        for e in ALL
        for program in commands(yaml.safe_load(e.text))
        if Path(program).name not in shipped
    }
    assert named == set(), "ship these under deploy/examples/scripts/ or drop them"
