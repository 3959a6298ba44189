#!/usr/bin/env bash
# The quick start: set up a fresh Debian machine (as root) and run a local demo —
# ZooKeeper plus two failoverd nodes on loopback, a failover you can watch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
exec python3 -m chaos.demo "$@"
