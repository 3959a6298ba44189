"""The ZooKeeper timing rule that keeps a short ZooKeeper stall from failing over.

A follower gives up on its leader after syncLimit x tickTime without a packet,
counted from the leader's last ping (sent every tickTime/2). A leader stalled
for P therefore looks gone after P + up to tickTime/2, and the election that
follows (0.2-0.6 s, clients disconnected) outlasts the active's lease. Stalls
shorter than T/2 must never fail over (the lease's margin), so detection must exceed
T/2 + tickTime/2 with some slack for scheduling; and it must stay below T, or a
follower cut off from its leader costs its clients their sessions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.lab.nodes import SESSION_TIMEOUT
from failoverd.config.model import ZooKeeperConfig
from tests.support.zookeeper import ZooKeeperServer

REPO = Path(__file__).resolve().parents[3]
SLACK = 0.1  # seconds of scheduling jitter the detection must leave


def settings(text: str) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


def detection_and_tick(cfg: dict[str, str]) -> tuple[float, float]:
    tick = int(cfg["tickTime"]) / 1000
    return int(cfg["syncLimit"]) * tick, tick


def check(cfg: dict[str, str], session_timeout: float) -> None:
    detection, tick = detection_and_tick(cfg)
    worst_gap = session_timeout / 2 + tick / 2
    assert detection >= worst_gap + SLACK, (
        f"syncLimit x tickTime = {detection:.3f}s: a leader stall just under T/2 "
        f"({session_timeout / 2:.2f}s) looks like {worst_gap:.3f}s to a follower"
    )
    assert detection < session_timeout


def test_the_labs_zookeeper_never_turns_a_stall_under_half_t_into_an_election(
    tmp_path: Path,
) -> None:
    server = ZooKeeperServer(workdir=tmp_path, client_port=2181)
    cfg = settings(server._write_config().read_text())
    check(cfg, float(SESSION_TIMEOUT.rstrip("s")))


@pytest.mark.parametrize("session_timeout", [ZooKeeperConfig.session_timeout])
def test_the_shipped_zoo_cfg_never_turns_a_stall_under_half_t_into_an_election(
    session_timeout: float,
) -> None:
    cfg = settings((REPO / "deploy/zookeeper/zoo.cfg").read_text())
    check(cfg, session_timeout)
