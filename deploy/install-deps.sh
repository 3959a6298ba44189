#!/usr/bin/env bash
# Installs everything failoverd, its tests and its demo need on a fresh Debian 12
# machine (run as root), then the package itself in editable mode. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

# keepalived is only the benchmark's baseline (python -m chaos bench).
debs=(zookeeper openssh-server iptables nftables iproute2 netcat-openbsd arping procps keepalived)
missing=()
for p in "${debs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Package post-install scripts may start services on machines with systemd; the
# tests and the demo start their own private instances on loopback instead.
mkdir -p /run/sshd

python3 -m pip install -q --disable-pip-version-check -e "$here[test]"
