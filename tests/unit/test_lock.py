"""The venv the tests run in holds exactly the locked versions, and the two locks agree.

A test run on other versions than the ones the Debian package installs proves
nothing about the package: deploy/install-deps.sh installs the locks with
--require-hashes, and these tests catch a venv that drifted since.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.checkout import REPO
from tests.support.lockfile import drift, pins

LOCK = REPO / "requirements.lock"
TEST_LOCK = REPO / "requirements-test.lock"


def test_the_venv_holds_exactly_the_runtime_lock() -> None:
    assert drift(LOCK) == [], "reinstall: bash deploy/install-deps.sh"


def test_the_venv_holds_exactly_the_test_lock() -> None:
    assert drift(TEST_LOCK) == [], "reinstall: bash deploy/install-deps.sh"


def test_a_version_the_venv_does_not_have_is_reported(tmp_path: Path) -> None:
    planted = tmp_path / "requirements.lock"
    text = re.sub(r"^kazoo==\S+", "kazoo==0.0.1", LOCK.read_text(), flags=re.M)
    planted.write_text(text)
    assert pins(planted)["kazoo"] == "0.0.1"
    problems = drift(planted)
    assert len(problems) == 1
    assert problems[0].startswith("kazoo: requirements.lock pins 0.0.1, installed 2.")


def test_a_locked_package_that_is_not_installed_is_reported(tmp_path: Path) -> None:
    planted = tmp_path / "requirements.lock"
    planted.write_text(LOCK.read_text() + "not-a-failoverd-dependency==1.0 \\\n")
    assert drift(planted) == [
        "not-a-failoverd-dependency: requirements.lock pins 1.0, not installed"
    ]


def test_the_lock_pins_every_runtime_dependency_and_their_own() -> None:
    locked = set(pins(LOCK))
    # pyproject.toml's dependencies, and what paramiko and cryptography pull in.
    assert {"kazoo", "pure-sasl", "paramiko", "pyyaml", "structlog", "prometheus-client"} <= locked
    assert {"click", "cryptography", "bcrypt", "pynacl", "cffi", "pycparser"} <= locked
    assert "pytest" not in locked, "test tools belong in requirements-test.lock"


def test_every_lock_line_carries_a_hash() -> None:
    for lock in (LOCK, TEST_LOCK):
        text = lock.read_text()
        for name in pins(lock):
            block = text.split(f"\n{name}==", 1)[1].split("\n    #", 1)[0]
            assert "--hash=sha256:" in block, f"{lock.name}: {name} has no hash"


def test_the_test_lock_keeps_the_runtime_pins() -> None:
    runtime, test = pins(LOCK), pins(TEST_LOCK)
    assert {n: test.get(n) for n in runtime} == runtime
