#!/usr/bin/env bash
# The one command that installs everything and runs every test (README.md, "Quick start";
# .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
# Two cores: integration tests start JVMs and daemons, so they run one at a time.
exec "${FAILOVERD_VENV:-/opt/failoverd}/bin/python" -m pytest -ra -p no:cacheprovider "$@"
