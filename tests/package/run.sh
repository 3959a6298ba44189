#!/usr/bin/env bash
# The Debian package end to end (CI, as root, on Debian 12): build it from this
# checkout, install it with apt-get, check what it installed and that it runs,
# purge it, and check that nothing of it is left behind.
#
#   bash tests/package/run.sh
#
# It refuses to start on a machine where failoverd is installed as a package or
# /var/lib/failoverd holds anything (a real node's state), and purges what it
# installed even when a check fails. Exit 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
export PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive
unset PYTHONPATH VIRTUAL_ENV

[ "$(id -u)" = 0 ] || { echo "tests/package/run.sh: run as root" >&2; exit 2; }
if dpkg -s failoverd >/dev/null 2>&1 || [ -n "$(ls -A /var/lib/failoverd 2>/dev/null)" ]; then
    echo "tests/package/run.sh: failoverd is installed here (package or /var/lib/failoverd);" \
         "this test installs and purges its own, so it does not run on such a machine" >&2
    exit 2
fi
# An empty one (the unit tests of the default state dir make it) stays as it is:
# the purge checks of the state dir then run only on a dir this test saw made.
own_state=yes
[ -e /var/lib/failoverd ] && own_state=no
work=$(mktemp -d /tmp/failoverd-package-test.XXXXXX)
cleanup() {
    apt-get purge -y -qq failoverd >/dev/null 2>&1 || true
    rm -f /var/lib/failoverd/fence.marker
    [ "$own_state" = no ] || rmdir /var/lib/failoverd 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
failed=0
ok() { echo "ok    $*"; }
bad() { echo "FAIL  $*" >&2; failed=1; }
check() { local what=$1; shift; if "$@" >"$work/out" 2>&1; then ok "$what"; else bad "$what"; cat "$work/out" >&2; fi; }

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' failoverd/__init__.py)
started=$(date +%s)
bash deploy/build-deb.sh "$work/dist"
built=$(( $(date +%s) - started ))
deb=$(ls "$work"/dist/failoverd_"$version"_*.deb)
apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
venv=/opt/venvs/failoverd
site=$venv/lib/python3.11/site-packages

# --- what the package installed ----------------------------------------------
short=$(git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
check "failoverd --version says $version and the commit" \
    sh -c "/usr/bin/failoverd --version | grep -qx 'failoverd $version (commit $short)'"
check "failoverctl --version says $version and the commit" \
    sh -c "/usr/bin/failoverctl --version | grep -qx 'failoverd $version (commit $short)'"
check "failoverctl --help" /usr/bin/failoverctl --help
check "failoverd and failoverctl on PATH are the package's" \
    test "$(readlink -f /usr/bin/failoverd)" = "$venv/bin/failoverd" -a \
         "$(readlink -f /usr/bin/failoverctl)" = "$venv/bin/failoverctl"
check "the venv holds exactly requirements.lock" \
    "$venv/bin/python" tests/support/lockfile.py requirements.lock
check "and nothing else but failoverd (no pip, no test or lab code)" "$venv/bin/python" -I -c '
import sys
from importlib import metadata
sys.path.insert(0, sys.argv[1])
from tests.support.lockfile import canonical, pins
from pathlib import Path
have = {canonical(d.metadata["Name"]) for d in metadata.distributions()}
extra = have - set(pins(Path(sys.argv[1]) / "requirements.lock")) - {"failoverd"}
sys.exit(f"not in the lock: {sorted(extra)}" if extra else 0)' "$repo"
check "no chaos/ or tests/ in the venv" sh -c "! ls -d $site/chaos $site/tests 2>/dev/null"
if git rev-parse --verify -q HEAD >/dev/null; then
    check "failoverd/BUILD_COMMIT is this checkout's HEAD" \
        test "$(cat "$site/failoverd/BUILD_COMMIT")" = "$(git rev-parse HEAD)"
fi
check "the unit is installed" test -f /lib/systemd/system/failoverd.service
check "the unit runs /usr/bin/failoverd" \
    grep -qx 'ExecStart=/usr/bin/failoverd -c /etc/failoverd/failoverd.yaml' \
        /lib/systemd/system/failoverd.service
check "the unit is not enabled" \
    test ! -e /etc/systemd/system/multi-user.target.wants/failoverd.service
check "/etc/failoverd holds no config (the unit cannot start half-configured)" \
    test -z "$(ls -A /etc/failoverd)"
check "/var/lib/failoverd is root's, mode 0700" \
    test "$(stat -c '%U %a' /var/lib/failoverd)" = "root 700"
for page in failoverd.8 failoverctl.8 failoverd.yaml.5; do
    name=${page%.*}; section=${page##*.}
    check "man $section $name" sh -c "man -w $section $name && man $section $name | grep -q NAME"
done
check "bash completion for failoverctl" bash -c \
    'source /usr/share/bash-completion/completions/failoverctl && complete -p failoverctl'
check "examples and the fencing guide" test -f /usr/share/doc/failoverd/examples/failoverd.yaml \
    -a -f /usr/share/doc/failoverd/fencing/README.md -a -d /usr/share/doc/failoverd/examples/hooks

# --- it runs ---------------------------------------------------------------
cat >"$work/failoverd.yaml" <<YAML
cluster: package-check
node: {name: node1, address: 127.0.0.1, state_dir: /var/lib/failoverd}
peers: {node2: {address: 127.0.0.2}}
zookeeper:
  hosts: 127.0.0.1:2181
  auth: {scheme: digest, credential_file: $work/zk.secret}
health: {checks: [{type: command, argv: [/bin/true], timeout: 2s}]}
resources: [{type: command, start: [/bin/true], stop: [/bin/true], status: [/bin/true]}]
fencing: [{type: command, argv: [/bin/true, "{node}"], timeout: 5s}]
watchdog: {systemd: false}
YAML
(umask 077 && echo "failoverd:package-check-only" >"$work/zk.secret")
check "failoverd --check passes a complete config" \
    /usr/bin/failoverd -c "$work/failoverd.yaml" --check
/usr/bin/failoverd -c /usr/share/doc/failoverd/examples/failoverd.yaml --check >"$work/example" 2>&1 \
    && rc=0 || rc=$?
check "failoverd --check refuses the bare example (exit 2, names the key)" sh -c \
    "[ $rc = 2 ] && grep -q 'zookeeper.auth.credential_file' '$work/example'"
check "nothing in the venv that dpkg does not know (no stray .pyc)" bash -c \
    "[ -z \"\$(comm -23 <(find $venv | sort) <(dpkg -L failoverd | sort))\" ]"
sizes="deb $(du -h "$deb" | cut -f1), venv $(du -sh "$venv" | cut -f1), build ${built}s"

# --- the demo against the installed package ---------------------------------------
# ZooKeeper and two nodes on loopback running /usr/bin/failoverd and failoverctl; the
# driver (and the toy mail service it gives the nodes) comes from the developer's venv.
demo_python=${FAILOVERD_VENV:-/opt/failoverd}/bin/python
if [ -x "$demo_python" ]; then
    check "the demo against the installed package (a failover)" \
        "$demo_python" -m chaos.demo --installed --dir "$work/demo"
    [ "$failed" = 0 ] || tail -n 40 "$work/demo"/*.log >&2 2>/dev/null || true
else
    bad "the demo against the installed package: no $demo_python (run deploy/install-deps.sh)"
fi

# --- purge -------------------------------------------------------------------
# A fence marker is the operator's: purge keeps a state dir that is not empty.
touch /var/lib/failoverd/fence.marker
apt-get purge -y -qq failoverd >/dev/null
check "purge kept /var/lib/failoverd with its fence marker" test -f /var/lib/failoverd/fence.marker
rm /var/lib/failoverd/fence.marker
check "purged: dpkg knows no failoverd" sh -c "! dpkg -s failoverd"
for path in "$venv" /opt/venvs /usr/bin/failoverd /usr/bin/failoverctl /etc/failoverd \
            /lib/systemd/system/failoverd.service /usr/share/doc/failoverd \
            /usr/share/bash-completion/completions/failoverctl /usr/share/man/man8/failoverd.8.gz; do
    if [ -e "$path" ] || [ -L "$path" ]; then
        check "purged: $path is gone" false
    fi
done
check "purged: everything the package installed is gone" true
if [ "$own_state" = yes ]; then
    rmdir /var/lib/failoverd
    apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
    apt-get purge -y -qq failoverd >/dev/null
    check "purge removes an empty /var/lib/failoverd" test ! -e /var/lib/failoverd
fi

echo "sizes: $sizes"
[ "$failed" = 0 ] && echo "package test: all checks passed" || echo "package test: FAILED" >&2
exit "$failed"
