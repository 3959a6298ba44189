"""Does a Python environment hold exactly what a lock file pins?

requirements.lock is what the Debian package's venv installs and what the tests
ran; a venv that drifted from it (a `pip install -U` by hand, a lock edited
without reinstalling) tests or ships something else. Stdlib only, so any venv's
interpreter can run it, the package's included:

    /opt/venvs/failoverd/bin/python tests/support/lockfile.py requirements.lock

prints each difference and exits 1 if there is one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def canonical(name: str) -> str:
    """The name as PyPI compares it (PEP 503): PyYAML, pyyaml and py_yaml are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path) -> dict[str, str]:
    """name -> version for every `name==version` line (hashes and comments skipped)."""
    found = {}
    for line in lock.read_text().splitlines():
        m = _PIN.match(line)
        if m:
            found[canonical(m.group(1))] = m.group(2)
    return found


def installed_versions() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}


def drift(lock: Path, installed: Callable[[], dict[str, str]] = installed_versions) -> list[str]:
    """One sentence per locked package that is missing or at another version."""
    have = installed()
    problems = []
    for name, version in sorted(pins(lock).items()):
        if name not in have:
            problems.append(f"{name}: {lock.name} pins {version}, not installed")
        elif have[name] != version:
            problems.append(f"{name}: {lock.name} pins {version}, installed {have[name]}")
    return problems


if __name__ == "__main__":
    problems = [p for arg in sys.argv[1:] for p in drift(Path(arg))]
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)
