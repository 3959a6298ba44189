"""A `command` fencer for clusters whose nodes all live on this machine (the
integration tests and the loopback demo): it runs the target's own `fence-self`.

    python -m tests.support.localfence CLUSTER_ROOT NODE
        (config: CLUSTER_ROOT/NODE/failoverd.yaml)

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
epoch = int(os.environ["FAILOVERD_EPOCH"]) - 1
broken = (root / "fence-broken").exists()
installed = os.environ.get("FAILOVERD_BIN")
failoverd = [installed] if installed else [sys.executable, "-m", "failoverd.main"]
# An installed failoverd must import its own code, not the checkout's on PYTHONPATH.
env = {k: v for k, v in os.environ.items() if not (installed and k == "PYTHONPATH")}
rc = 1
if not broken:
    rc = subprocess.run(
        [
            *failoverd,
            "-c",
            str(root / node / "failoverd.yaml"),
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
