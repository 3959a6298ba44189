#!/usr/bin/env bash
# Builds the Debian package on Debian 12, as root (it installs the build tools):
#
#   bash deploy/build-deb.sh [OUTDIR]     -> OUTDIR/failoverd_VERSION_ARCH.deb
#                                            (default OUTDIR: dist/ in this checkout)
#
# VERSION is failoverd.__version__, which debian/changelog's top entry must match
# (tests/unit/test_debian_package.py). The package's venv holds exactly
# requirements.lock, hash-checked; the build needs PyPI for those files.
# It builds from a copy of the checkout (tracked and new files, as they are in the
# working tree): dpkg-buildpackage writes into debian/ and next to the source.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$here/dist}" && cd "${1:-$here/dist}" && pwd)
# Debian's tools only: a pyenv shim or an activated venv first on PATH would build
# the venv from another interpreter.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH VIRTUAL_ENV

debs=(build-essential debhelper dh-virtualenv python3 python3-venv python3-build
      python3-setuptools python3-wheel git)
missing=()
for p in "${debs[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$here/failoverd/__init__.py")
[ -n "$version" ] || { echo "build-deb.sh: no __version__ in failoverd/__init__.py" >&2; exit 2; }
# Always the same build directory: pip and venv write its path into files that
# ship (the scripts' RECORD hashes, pyvenv.cfg's `command`), so two builds of one
# commit give the same files only when they are built in the same place. One
# build at a time (flock).
work=/tmp/failoverd-deb-build
exec 9>"$work.lock"
flock 9
rm -rf "$work"
trap 'rm -rf "$work"' EXIT
src="$work/failoverd-$version"
mkdir -p "$src"
if git -C "$here" rev-parse --verify -q HEAD >/dev/null; then
    # The commit goes into the package (failoverd/BUILD_COMMIT) for --version.
    export FAILOVERD_BUILD_COMMIT=${FAILOVERD_BUILD_COMMIT:-$(git -C "$here" rev-parse HEAD)}
    if [ -n "$(git -C "$here" status --porcelain)" ]; then
        echo "build-deb.sh: warning: uncommitted changes; the package says $FAILOVERD_BUILD_COMMIT" >&2
    fi
    (cd "$here" && git ls-files -z --cached --others --exclude-standard) \
        | (cd "$here" && tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$src"
else
    tar -C "$here" --exclude=./dist --exclude=./debian/failoverd --exclude='__pycache__' \
        --exclude='*.egg-info' -cf - . | tar -xf - -C "$src"
fi

started=$(date +%s)
(cd "$src" && dpkg-buildpackage -us -uc -b)
deb=$(ls "$work"/failoverd_"$version"_*.deb)
cp "$deb" "$out/"
echo "built $out/$(basename "$deb") in $(( $(date +%s) - started ))s"
