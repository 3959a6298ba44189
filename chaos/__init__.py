"""The chaos lab: network namespaces, nemeses, checker (DESIGN.md §8).

The lab is not part of the installed package (pyproject: only `failoverd*` goes
onto mail servers); it runs from a checkout, `python -m chaos ...` from the
repository root. The processes it starts run elsewhere: a daemon's resource
command (`python -m chaos.service`), a fencing command, keepalived's notify
scripts. Putting the checkout on PYTHONPATH here, once, lets every one of them
that inherits our environment import `chaos` whatever its working directory.
(sshd gives its forced command a clean environment: chaos/nodes.py passes
PYTHONPATH there explicitly.)
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = str(Path(__file__).resolve().parent.parent)

_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if REPO not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([REPO, *_paths])
