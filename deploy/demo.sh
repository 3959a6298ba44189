#!/usr/bin/env bash
# The quick start: set up a fresh Debian machine (as root) and run a local demo —
# ZooKeeper plus two failoverd nodes on loopback, a failover you can watch.
#   bash deploy/demo.sh               the nodes run this checkout's code
#   bash deploy/demo.sh --installed   the nodes run the installed package's
#                                     /usr/bin/failoverd and /usr/bin/failoverctl
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
exec "${FAILOVERD_VENV:-/opt/failoverd}/bin/python" -m chaos.demo "$@"
