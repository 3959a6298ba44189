#!/usr/bin/env bash
# The one command that installs everything and runs every test (README.md, "Quick start";
# .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
# The Debian package end to end (root only; FAILOVERD_SKIP_PACKAGE=1 skips it): build
# it from this checkout, install it, run the demo against it, purge it, check that
# nothing is left. Its purge takes the /usr/bin links the developer install made:
# install-deps.sh puts them back (a second run changes nothing else).
if [ "$(id -u)" = 0 ] && [ "${FAILOVERD_SKIP_PACKAGE:-0}" != 1 ]; then
    bash tests/package/run.sh
    bash deploy/install-deps.sh
fi
# Two cores: integration tests start JVMs and daemons, so they run one at a time.
exec "${FAILOVERD_VENV:-/opt/failoverd}/bin/python" -m pytest -ra -p no:cacheprovider "$@"
