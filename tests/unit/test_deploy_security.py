"""The shipped deploy files are closed by default."""

from __future__ import annotations

import re
from pathlib import Path

from failoverd.checks.preflight import UNIT_STATE_DIR
from failoverd.config import NodeConfig

REPO = Path(__file__).resolve().parents[2]


def settings(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_zoo_cfg_enforces_auth_and_binds_the_client_port() -> None:
    lines = settings(REPO / "deploy/zookeeper/zoo.cfg")
    assert "enforce.auth.enabled=true" in lines
    # SASL admits only the users of the JAAS file; digest would admit anyone.
    assert "enforce.auth.schemes=sasl" in lines
    assert "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider" in lines
    assert any(line.startswith("clientPortAddress=") for line in lines)
    assert not any(line in ("clientPortAddress=0.0.0.0", "clientPortAddress=::") for line in lines)


def test_authorized_keys_example_restricts_the_source_address_by_default() -> None:
    (line,) = settings(REPO / "deploy/fencing/authorized_keys.example")
    assert re.match(r'from="[^"]+",command="[^"]+fence-self --from-ssh",restrict ssh-', line)


def test_unit_writes_only_the_default_state_dir_and_keeps_few_capabilities() -> None:
    lines = settings(REPO / "deploy/failoverd.service")
    assert NodeConfig.state_dir == UNIT_STATE_DIR
    assert f"ReadWritePaths={UNIT_STATE_DIR}" in lines
    (caps,) = [x for x in lines if x.startswith("CapabilityBoundingSet=")]
    assert set(caps.split("=", 1)[1].split()) == {
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_KILL",
        "CAP_DAC_READ_SEARCH",
    }
    assert "DevicePolicy=closed" in lines and "DeviceAllow=/dev/watchdog rw" in lines
    assert "PrivateTmp=yes" in lines  # why state dirs under /tmp are refused


def test_example_config_sets_up_zookeeper_auth() -> None:
    text = (REPO / "deploy/examples/failoverd.yaml").read_text()
    assert re.search(r"^  auth: \{scheme: sasl, credential_file: \S+\}", text, re.M)
    assert "insecure: true" not in settings(REPO / "deploy/examples/failoverd.yaml")
