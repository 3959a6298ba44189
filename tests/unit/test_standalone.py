"""The repository stands alone: what it says, it says itself.

A reader of a release (an operator with the tarball, a reviewer with the Debian
source) has only the tracked files. So nothing tracked points at design notes or
machine notes that live outside the repository, and comments and docs speak of the
domain rather than of tracker entries ("issue 12", "(#12)") the reader cannot open.
Benchmark pages (docs/benchmarks*.md) may name commits and runs: they are records.

This file is exempt: its examples of what the patterns catch would match them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THIS_FILE = "tests/unit/test_standalone.py"

# Spelled in pieces, so that this file does not itself name what it looks for.
_DESIGN, _NOTES, _SHARED = "DESIGN" + r"\.md", "MACHINE" + "-NOTES", r"\.\." + "/shared"
OUTSIDE_DOCUMENTS = re.compile(f"{_DESIGN}|{_NOTES}|{_SHARED}|§")
ISSUE_NUMBER = re.compile(
    r"(?<![A-Za-z])[Ii]ssues?[ _-]?#?\d+"  # issue 12, issue #12, issue-11, issue_11
    r"|\(#\d+\)"  # (#12)
    r"|\b[A-Za-z]+ #\d+"  # kazoo #588, PR #7
)
# Where issue numbers must not appear: the code, the lab, the deploy files, the docs,
# the changelog.
ISSUE_SCOPE = ("failoverd/", "chaos/", "deploy/", "docs/", "tests/", "README.md", "CHANGELOG.md")


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=False
    )
    if out.returncode != 0:
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [name for name in out.stdout.decode().split("\0") if name and name != THIS_FILE]


def is_benchmark_page(name: str) -> bool:
    return re.fullmatch(r"docs/benchmarks[^/]*\.md", name) is not None


def text_of(name: str) -> str | None:
    try:
        data = (REPO / name).read_bytes()
    except OSError:  # deleted in the work tree but still in the index
        return None
    if b"\0" in data:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def offending_lines(names: list[str], pattern: re.Pattern[str]) -> list[str]:
    found = []
    for name in names:
        text = text_of(name)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    return found


def test_no_tracked_file_points_at_documents_outside_the_repository() -> None:
    names = [n for n in tracked_files() if not is_benchmark_page(n)]
    assert offending_lines(names, OUTSIDE_DOCUMENTS) == []


def test_code_lab_deploy_files_and_docs_carry_no_issue_numbers() -> None:
    names = [
        n for n in tracked_files() if n.startswith(ISSUE_SCOPE) and not is_benchmark_page(n)
    ]
    assert offending_lines(names, ISSUE_NUMBER) == []


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        ("# a poisoned znode (issue 14) left it", True),
        ('"""Issue 9 item 3: the start times out', True),
        ("def test_render_is_the_issue_11_table():", True),
        ("fixed in (#12)", True),
        ("later (kazoo #588), so", True),
        ("see " + "DESIGN" + ".md for the lease", True),
        ("| #1 outage median | #3 |", False),  # the lab's scenario numbers
        ("an epoch ZooKeeper never issued", False),
        ("ca.issue(names, cert, key)", False),
    ],
)
def test_the_patterns_catch_what_they_are_for(line: str, flagged: bool) -> None:
    hit = bool(ISSUE_NUMBER.search(line) or OUTSIDE_DOCUMENTS.search(line))
    assert hit is flagged
