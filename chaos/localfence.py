"""Test fencer (a `command` fencing method): runs the target's own `fence-self`.

    fence_peer.py CLUSTER_ROOT NODE

All test nodes live on one machine, so "power" is running the target's fence-self
locally. Every call is appended to CLUSTER_ROOT/fence-calls.jsonl for assertions;
the file CLUSTER_ROOT/fence-broken makes it fail (a fencer that cannot reach its target).
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
rc = 1
if not broken:
    rc = subprocess.run(
        [
            sys.executable,
            "-m",
            "failoverd.main",
            "-c",
            str(root / node / "failoverd.yaml"),
            "fence-self",
            "--epoch",
            str(epoch),
        ],
        check=False,
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
