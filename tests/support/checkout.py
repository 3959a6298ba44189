"""The checkout these tests and the lab run from, and how the processes they start find it.

The lab, the demo and the integration tests start processes that import this
checkout's code by module name (`python -m chaos.services.toy_smtp` as a daemon's
resource, `python -m tests.support.localfence` as its fencer), usually several
layers down: a daemon started in a namespace runs a resource command that runs
Python. Each entry point (`python -m chaos`, `python -m chaos.bench`, the demo,
pytest's conftest) calls `use_checkout()` once, explicitly, so that every child
that inherits the environment imports the same code whatever its working
directory. Importing a module changes no environment variable.
(sshd gives a forced command a clean environment: chaos/lab/nodes.py passes
PYTHONPATH there itself.)
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def use_checkout() -> None:
    """Put the checkout first on PYTHONPATH for every process started after this."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *paths])
