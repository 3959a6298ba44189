"""Shared fixtures: real ZooKeeper servers on loopback, whose logs are printed when a
test that used them fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.checkout import use_checkout
from tests.support.zookeeper import Ensemble, ZooKeeperServer, free_port


def pytest_configure(config: pytest.Config) -> None:
    use_checkout()  # the daemons, services and fencers the tests start import this checkout


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def _failed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return bool(rep is not None and rep.failed)


@pytest.fixture(scope="session")
def zk_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    """One standalone server for the whole run; tests use distinct cluster names."""
    server = ZooKeeperServer(tmp_path_factory.mktemp("zk"), free_port())
    server.start()
    server.wait_serving()
    yield server
    server.stop()


@pytest.fixture
def zk(zk_session: ZooKeeperServer, request: pytest.FixtureRequest) -> Iterator[ZooKeeperServer]:
    yield zk_session
    if _failed(request):
        print(f"\n--- ZooKeeper log tail ({zk_session.address})\n{zk_session.log_tail()}")


@pytest.fixture
def ensemble(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Ensemble]:
    ens = Ensemble.on_loopback(tmp_path / "ensemble")
    ens.start()
    yield ens
    if _failed(request):
        print(f"\n--- ZooKeeper ensemble log tails\n{ens.log_tail()}")
    ens.stop()
