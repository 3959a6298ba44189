"""The house rules of the layout, checked on the source so they cannot erode unseen.

A newcomer reads a package's `__init__` docstring to learn what lives there and
what it may import; these tests hold the code to what those docstrings say.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from tests.support.checkout import REPO
from tests.support.imports import ImportGraph, read_graph


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return read_graph()


def test_there_are_no_import_circles(graph: ImportGraph) -> None:
    assert graph.circles() == []


def test_no_module_imports_another_modules_underscore_names(graph: ImportGraph) -> None:
    assert graph.private == []


def test_only_the_zookeeper_package_imports_kazoo(graph: ImportGraph) -> None:
    users = {m for m, ex in graph.external.items() if "kazoo" in ex and m.startswith("failoverd.")}
    assert users and all(m.startswith("failoverd.zk.") for m in users), sorted(users)


def test_config_parses_and_imports_nothing_of_failoverd_outside_it(graph: ImportGraph) -> None:
    config = [m for m in graph.files if m.startswith(("failoverd.config.", "failoverd.config"))]
    outside = {
        (m, t)
        for m in config
        for t in graph.edges[m]
        if t.startswith("failoverd") and not t.startswith("failoverd.config")
    }
    assert outside == set()


def test_the_process_runner_is_a_leaf(graph: ImportGraph) -> None:
    assert {t for t in graph.edges["failoverd.process"] if t.startswith("failoverd")} <= {
        "failoverd.observe.fastlog"
    }


def test_every_package_says_what_lives_there_and_what_it_may_import(graph: ImportGraph) -> None:
    for mod, path in graph.files.items():
        if path.name != "__init__.py" or not mod.startswith(("failoverd.", "chaos")):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert len(doc.split()) >= 25 and "TODO" not in doc, f"{path}: {doc!r}"
        assert "import" in doc, f"{path}: say what the package may import"


def test_subpackage_inits_import_nothing(graph: ImportGraph) -> None:
    # `failoverd fence-self` runs on the fencing path: importing a package must not
    # drag its siblings in. config/ alone re-exports its model and loader.
    for mod, path in graph.files.items():
        if path.name == "__init__.py" and mod.count(".") == 1 and mod != "failoverd.config":
            assert graph.edges[mod] == set() and graph.external[mod] <= {"__future__"}, mod


def test_unit_tests_do_not_test_the_lab(graph: ImportGraph) -> None:
    assert not [
        (m, t)
        for m, targets in graph.edges.items()
        if m.startswith("tests.unit.")
        for t in targets
        if t.startswith("chaos")
    ]


def test_importing_the_lab_changes_no_environment_variable() -> None:
    script = (
        "import json, os; before = dict(os.environ)\n"
        "import chaos, chaos.runner, chaos.parallel, chaos.faults.soak, chaos.bench.suite\n"
        "print(json.dumps(dict(os.environ) == before))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) is True
