"""paramiko, imported without `invoke`.

A standby imports paramiko when it first fences (failoverd/fencing/ssh.py): idle
daemons stay small, but the import lies on the takeover's critical path.
paramiko.config imports `invoke` (a task runner: 10 of the 37 ms that loading
the fencer costs a running daemon, measured) only to run ssh_config `Match exec`
lines, and the
fencer never reads an ssh_config. paramiko treats a failed `invoke` import as
"feature unavailable", so it is hidden for the duration of the import only;
anything else in the process may still import invoke later.
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_paramiko() -> ModuleType:
    if "paramiko" in sys.modules or "invoke" in sys.modules:
        import paramiko

        return paramiko
    sys.modules["invoke"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import paramiko
    finally:
        del sys.modules["invoke"]
    return paramiko
