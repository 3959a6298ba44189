"""Tests of the chaos lab's code. `unit/` is pure; `lab/` builds real labs, which need root
and `ip netns`: without them those tests skip cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the chaos lab needs root"
    if shutil.which("ip") is None or shutil.which("nft") is None:
        return "iproute2 and nftables are needed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True)
    if probe.returncode != 0:
        return "`ip netns` is not available"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = lab_unavailable()
    for item in items:
        if "tests/chaos/lab/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.chaos)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def lab_namespaces(prefix: str = "fo") -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]
