"""`--version` of both commands: the release and the commit it was built from.

An operator in the middle of a rolling upgrade asks each node what it runs. The
version alone does not tell two builds of one release apart, so the commit comes
with it: from failoverd/BUILD_COMMIT, which the Debian package build writes, else
from git when the package runs from a checkout, else "unknown".
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import failoverd
from tests.support.checkout import REPO

PACKAGE = Path(failoverd.__file__).resolve().parent


def run_version(tree: Path, command: str) -> subprocess.CompletedProcess[str]:
    """`<command> --version` with `tree`'s failoverd first on the path."""
    module = {"failoverd": "failoverd.main", "failoverctl": "failoverd.cli.failoverctl"}[command]
    script = f"import sys, {module} as m; sys.exit(m.main(['--version']))"
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def copied_package(tmp_path: Path) -> Path:
    """The failoverd package alone, outside any git checkout (as installed)."""
    tree = tmp_path / "site-packages"
    tree.mkdir()
    shutil.copytree(PACKAGE, tree / "failoverd", ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "failoverd" / "BUILD_COMMIT").unlink(missing_ok=True)
    return tree


def test_the_version_is_0_2_0_in_one_place() -> None:
    assert failoverd.__version__ == "0.2.0"
    assert 'version = {attr = "failoverd.__version__"}' in (REPO / "pyproject.toml").read_text()


@pytest.mark.parametrize("command", ["failoverd", "failoverctl"])
def test_version_names_the_commit_the_package_build_wrote(
    copied_package: Path, command: str
) -> None:
    (copied_package / "failoverd" / "BUILD_COMMIT").write_text("3f2a9c1\n")
    out = run_version(copied_package, command)
    assert (out.returncode, out.stdout, out.stderr) == (0, "failoverd 0.2.0 (commit 3f2a9c1)\n", "")


def test_the_full_hash_the_package_build_writes_is_shown_abbreviated(
    copied_package: Path,
) -> None:
    full = "3f2a9c1d0b8e7f6a5c4d3e2f1a0b9c8d7e6f5a4b"
    (copied_package / "failoverd" / "BUILD_COMMIT").write_text(full + "\n")
    out = run_version(copied_package, "failoverctl")
    assert out.stdout == "failoverd 0.2.0 (commit 3f2a9c1)\n"


@pytest.mark.parametrize("command", ["failoverd", "failoverctl"])
def test_version_outside_a_checkout_and_without_build_commit_says_unknown(
    copied_package: Path, command: str
) -> None:
    out = run_version(copied_package, command)
    assert (out.returncode, out.stdout) == (0, "failoverd 0.2.0 (commit unknown)\n")


def test_a_garbled_build_commit_is_not_printed(copied_package: Path) -> None:
    (copied_package / "failoverd" / "BUILD_COMMIT").write_text("\x1b[2J rm -rf /\n")
    out = run_version(copied_package, "failoverd")
    assert out.stdout == "failoverd 0.2.0 (commit unknown)\n"


def git(tree: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def checkout(copied_package: Path) -> Path:
    """A git checkout whose root holds the failoverd package, one commit deep."""
    git(copied_package, "init", "-q")
    git(copied_package, "add", "failoverd")
    git(copied_package, "commit", "-q", "-m", "release")
    return copied_package


@pytest.mark.parametrize("command", ["failoverd", "failoverctl"])
def test_version_in_a_checkout_names_its_head(checkout: Path, command: str) -> None:
    head = git(checkout, "rev-parse", "--short", "HEAD")
    out = run_version(checkout, command)
    assert out.stdout == f"failoverd 0.2.0 (commit {head})\n"


def test_a_checkout_with_uncommitted_changes_is_dirty(checkout: Path) -> None:
    head = git(checkout, "rev-parse", "--short", "HEAD")
    (checkout / "untracked.txt").write_text("not part of the build\n")
    assert run_version(checkout, "failoverd").stdout == f"failoverd 0.2.0 (commit {head})\n"
    with (checkout / "failoverd" / "health.py").open("a") as f:
        f.write("# changed\n")
    out = run_version(checkout, "failoverd")
    assert out.stdout == f"failoverd 0.2.0 (commit {head}+dirty)\n"


def test_build_commit_wins_over_git(checkout: Path) -> None:
    (checkout / "failoverd" / "BUILD_COMMIT").write_text("3f2a9c1\n")
    assert run_version(checkout, "failoverd").stdout == "failoverd 0.2.0 (commit 3f2a9c1)\n"


def test_a_package_inside_someone_elses_checkout_does_not_take_its_commit(
    tmp_path: Path, copied_package: Path
) -> None:
    # A venv's site-packages somewhere under an unrelated git checkout: that
    # checkout's HEAD says nothing about the failoverd installed there.
    git(tmp_path, "init", "-q")
    (tmp_path / "other.txt").write_text("x\n")
    git(tmp_path, "add", "other.txt")
    git(tmp_path, "commit", "-q", "-m", "unrelated")
    assert run_version(copied_package, "failoverd").stdout == "failoverd 0.2.0 (commit unknown)\n"


def test_this_checkout_reports_a_commit() -> None:
    out = run_version(REPO, "failoverctl")
    assert re.fullmatch(r"failoverd 0\.2\.0 \(commit [0-9a-f]{7,40}(\+dirty)?\)\n", out.stdout)
