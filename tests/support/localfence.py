"""A `command` fencer for clusters whose nodes all live on this machine (the
integration tests and the loopback demo): it runs the target's own `fence-self`.

    python -m tests.support.localfence CLUSTER_ROOT NODE [--check]
        (config: CLUSTER_ROOT/NODE/failoverd.yaml)

--check is the fencer's `check_argv`: the target's `fence-self --dry-run`, which
stops nothing, so fence readiness and `failoverctl fence-check` can verify the
method (OK) instead of only finding the program (UNVERIFIED). It is not recorded.

FAILOVERD_EPOCH (set by failoverd) is the winner's new epoch; the target fences
every epoch below it. FAILOVERD_BIN, when set, is the failoverd that runs it (the
demo against the installed package: /usr/bin/failoverd), else this checkout's.
Every call is appended to CLUSTER_ROOT/fence-calls.jsonl;
the file CLUSTER_ROOT/fence-broken makes it fail, standing in for a fencer that
cannot reach its target.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

root, node = Path(sys.argv[1]), sys.argv[2]
check = sys.argv[3:] == ["--check"]
broken = (root / "fence-broken").exists()
installed = os.environ.get("FAILOVERD_BIN")
failoverd = [installed] if installed else [sys.executable, "-m", "failoverd.main"]
# An installed failoverd must import its own code, not the checkout's on PYTHONPATH.
env = {k: v for k, v in os.environ.items() if not (installed and k == "PYTHONPATH")}
config = str(root / node / "failoverd.yaml")
if check:
    if broken:
        sys.exit(1)
    dry = [*failoverd, "-c", config, "fence-self", "--dry-run"]
    sys.exit(subprocess.run(dry, check=False, env=env, stdout=subprocess.DEVNULL).returncode)
epoch = int(os.environ["FAILOVERD_EPOCH"]) - 1
rc = 1
if not broken:
    rc = subprocess.run(
        [
            *failoverd,
            "-c",
            config,
            "fence-self",
            "--epoch",
            str(epoch),
        ],
        check=False,
        env=env,
    ).returncode
with open(root / "fence-calls.jsonl", "a") as f:
    f.write(
        json.dumps(
            {
                "t": time.time(),
                "target": node,
                "by": os.environ.get("FAILOVERD_NODE"),
                "epoch": epoch,
                "rc": rc,
                "broken": broken,
            }
        )
        + "\n"
    )
sys.exit(rc)
