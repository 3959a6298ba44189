#!/usr/bin/env bash
# Regenerates the two lock files from pyproject.toml (run after changing its
# dependencies; commit both files with the change):
#   requirements.lock       the runtime dependencies, each pinned with its hashes:
#                           what the Debian package's venv and every developer and CI
#                           venv install (pip install --require-hashes).
#   requirements-test.lock  the test extra on top, the runtime pins held to the
#                           ones above (a constraint), so tests run what ships.
#
#   bash deploy/lock-deps.sh                               keep the pins that still fit
#   bash deploy/lock-deps.sh --upgrade-package cryptography   move one package
#   bash deploy/lock-deps.sh --upgrade                     move everything
#
# Needs PyPI; any user; writes nothing but the two files (pip-tools lives in a
# throwaway venv under /tmp).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tools=$(mktemp -d /tmp/failoverd-lock.XXXXXX)
trap 'rm -rf "$tools"' EXIT
# PyPI only: a local mirror or find-links directory in the builder's pip.conf must
# not put hashes of its own files into the lock.
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT
/usr/bin/python3 -m venv "$tools"
"$tools/bin/pip" install -q pip-tools==7.7.0

compile=("$tools/bin/pip-compile" -q --generate-hashes --strip-extras --no-emit-index-url
         --no-emit-find-links)
export CUSTOM_COMPILE_COMMAND="bash deploy/lock-deps.sh"  # the command the header names
header() {
    # pip-compile rewrites the whole file: our explanation goes back on top each time.
    { printf '%s\n' "$1" \
        "# Regenerate: bash deploy/lock-deps.sh (after changing pyproject.toml's" \
        "# dependencies; --upgrade-package NAME to move one). Never edit by hand:" \
        "# tests/unit/test_lock.py fails when the venv differs from this file."
      cat "$2"; } >"$2.new"
    mv "$2.new" "$2"
}
cd "$here"
"${compile[@]}" "$@" --output-file=requirements.lock pyproject.toml
header "# failoverd's runtime dependencies with their hashes: the Debian package's venv
# and every developer and CI venv install exactly these (--require-hashes)." requirements.lock
"${compile[@]}" "$@" --extra test --constraint requirements.lock \
    --output-file=requirements-test.lock pyproject.toml
header "# The test extra (pytest, matplotlib) on top of requirements.lock, whose pins
# it keeps: deploy/install-deps.sh installs both for developers and CI." requirements-test.lock
