"""The ssh fencer loads paramiko without `invoke` (failoverd/fencing/paramiko_import.py):
the import lies on the takeover's critical path."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import failoverd.fencing.ssh as s
loaded = "invoke" in sys.modules
import invoke  # still importable by anyone else afterwards
print(loaded, s.paramiko.SSHClient.__name__, invoke.__name__)
"""


def test_loading_the_ssh_fencer_leaves_invoke_unloaded_and_importable() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    assert out == ["False", "SSHClient", "invoke"]
