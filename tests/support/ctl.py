"""failoverctl as an operator runs it, for the exit-code tests: config files written
as YAML text, and the command run in a clean environment (`env -i` plus PATH and
this checkout), so nothing of the test runner's HOME or USER leaks in."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.checkout import REPO

# Every failoverctl command that talks to ZooKeeper, with arguments that pass
# click's checks. `restore` reads its file first: tests write BACKUP there.
ZK_COMMANDS: dict[str, list[str]] = {
    "status": ["status"],
    "status --json": ["status", "--json"],
    "history": ["history"],
    "history --json": ["history", "--json"],
    "maintenance": ["maintenance", "on", "--reason", "exit-code test"],
    "switchover": ["switchover", "--to", "mail2"],
    "failover": ["failover", "--to", "mail2", "--force"],
    "failover --dry-run": ["failover", "--to", "mail2", "--dry-run"],
    "switchover --dry-run": ["switchover", "--to", "mail2", "--dry-run"],
    "switchover --at": ["switchover", "--to", "mail2", "--at", "23:59"],
    "switchover --cancel": ["switchover", "--cancel"],
    "confirm-fenced": ["confirm-fenced", "mail2", "--reason", "exit-code test", "--yes"],
    "fix-acl": ["fix-acl"],
    "backup": ["backup", "{tmp}/backup.json"],
    "restore": ["restore", "{tmp}/restore.json"],
}


def backup_text(cluster: str) -> str:
    """The smallest backup `restore` accepts: nothing but the cluster's name."""
    return f'{{"kind": "failoverd-backup", "v": 1, "cluster": "{cluster}", "history": []}}\n'


def node_yaml(cluster: str, hosts: str, credential: Path | None, extra: str = "") -> str:
    auth = f"  auth: {{scheme: digest, credential_file: {credential}}}\n" if credential else ""
    return (
        textwrap.dedent(
            f"""\
            cluster: {cluster}
            node: {{name: mail1, address: 127.0.0.1}}
            peers: {{mail2: {{address: 127.0.0.1}}}}
            zookeeper:
              hosts: {hosts}
            """
        )
        + auth
        + "fencing:\n  - {type: command, argv: [/bin/true]}\n"
        + extra
    )


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """What `env -i` leaves, plus what finds Python and this checkout: no HOME, no USER."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    env.update(extra)
    return env


def ctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "failoverd.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=clean_env() if env is None else env,
        timeout=timeout,
        check=False,
        **kw,  # type: ignore[call-overload]
    )


def args_for(name: str, tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in ZK_COMMANDS[name]]
