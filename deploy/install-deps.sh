#!/usr/bin/env bash
# The developer's and CI's install: everything failoverd, its tests, its demo and
# its chaos lab need on a fresh Debian 12 machine, running this checkout (run as
# root). Idempotent: a second run changes nothing. A mail server installs the
# Debian package instead (bash deploy/build-deb.sh; it brings its own venv,
# /opt/venvs/failoverd, made from the same requirements.lock).
#
# Python: Debian's own python3 is "externally managed" (PEP 668), so a bare
# `pip install` is refused there. We install into a virtual environment at a
# fixed place, $FAILOVERD_VENV (default /opt/failoverd), made by Debian's
# /usr/bin/python3, and link the two console scripts into /usr/local/bin. Why a
# venv and not Debian's python3-kazoo & co.: Debian 12 ships no structlog >= 23
# and an older kazoo than the one whose behaviour we measured and tested; a
# venv pins what we tested, leaves the system interpreter untouched, and is one
# `rm -r` away from gone.
#
# The dependencies come from the locks, each file checked against its hash
# (--require-hashes): requirements.lock is what the Debian package ships, so the
# tests run those very versions (tests/unit/test_lock.py fails on a venv that
# drifted); requirements-test.lock adds pytest and matplotlib. This checkout is
# installed editable with --no-deps on top, so the tests and the lab run the code
# you are looking at.
#
# The systemd unit runs /usr/bin/failoverd: the Debian package's link into its
# venv, or on a developer's box the link made here into this one.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${FAILOVERD_VENV:-/opt/failoverd}

# keepalived is only the benchmark's baseline (python -m chaos bench). postfix,
# dovecot-imapd, resource-agents (+ kmod: the Filesystem agent needs modprobe) and
# e2fsprogs are the lab's real mail node.
# haproxy runs the `option httpchk GET /active` example of docs/monitoring.md, "HAProxy",
# in a test (tests/integration/test_endpoints.py).
debs=(python3 python3-venv zookeeper openssh-server openssh-client iptables nftables iproute2
      netcat-openbsd arping procps psmisc keepalived postfix dovecot-imapd resource-agents
      e2fsprogs util-linux swaks curl haproxy kmod)
missing=()
for p in "${debs[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # On a machine with systemd, postfix, dovecot and keepalived would start as
    # they are installed: a developer's box must not turn into a mail server on
    # port 25. policy-rc.d is Debian's switch for that (invoke-rc.d(8)); ours is
    # removed on exit, one already there is left alone.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# failoverd install-deps.sh: no service starts while installing\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # Postfix asks how to configure itself; the lab writes its own main.cf per node.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string localhost" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The tests and the demo start their own private instances on loopback.
mkdir -p /run/sshd

# A venv made by another interpreter (a pyenv python, an older Debian release's) is
# rebuilt: it breaks when that interpreter goes away, and Debian's security updates
# of python3 would not reach it.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null \
   || ! grep -qx 'home = /usr/bin' "$venv/pyvenv.cfg" 2>/dev/null; then
    /usr/bin/python3 -m venv --clear "$venv"
    rm -f "$venv/.failoverd-install"
fi
# pip runs only when something changed: another checkout, a changed pyproject.toml
# (entry points) or lock, or a venv that no longer imports this checkout. So a
# second run changes nothing and takes a second, not a rebuild of the editable wheel.
stamp="$venv/.failoverd-install"
want="$here $(cd "$here" && sha256sum pyproject.toml requirements.lock requirements-test.lock \
              | cut -d' ' -f1 | tr '\n' ' ')"
# -I: ignore the working directory and PYTHONPATH, so only the venv's own install counts.
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] \
   || [ ! -x "$venv/bin/failoverd" ] || [ ! -x "$venv/bin/failoverctl" ] \
   || ! "$venv/bin/python" -I -c 'import sys, failoverd; sys.exit(failoverd.__file__ != sys.argv[1])' \
        "$here/failoverd/__init__.py" 2>/dev/null; then
    pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
    "${pip[@]}" --require-hashes -r "$here/requirements.lock"
    "${pip[@]}" --require-hashes -r "$here/requirements-test.lock"
    "${pip[@]}" --no-deps -e "$here"
    echo "$want" >"$stamp"
fi
# Only the default install owns the system-wide names (a developer's side venv,
# FAILOVERD_VENV=/opt/fo-x, must not repoint them). /usr/bin/failoverd is the path
# the systemd unit and the fencing forced command name, the same path the Debian
# package puts there; when the package is installed, its link stays.
if [ "$venv" = /opt/failoverd ]; then
    for script in failoverd failoverctl; do
        for dir in /usr/local/bin /usr/bin; do
            [ "$dir" = /usr/bin ] && dpkg -S "/usr/bin/$script" >/dev/null 2>&1 && continue
            [ "$(readlink "$dir/$script")" = "$venv/bin/$script" ] \
                || ln -sfn "$venv/bin/$script" "$dir/$script"
        done
    done
fi
