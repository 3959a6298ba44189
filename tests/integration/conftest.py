"""Fixtures for integration tests. Each section is self-contained."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sshd import Sshd

# ---------------------------------------------------------------------------
# sshd: a private OpenSSH server on loopback, the target of ssh fencing
# ---------------------------------------------------------------------------


@pytest.fixture
def sshd(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Sshd]:
    """A started sshd with its own host key; prints its log if the test failed."""
    failed_before = request.session.testsfailed
    server = Sshd(tmp_path / "sshd")
    server.start()
    yield server
    server.stop()
    # The call phase's report is logged before teardown, so a failure is counted here.
    if request.session.testsfailed > failed_before:
        print(f"\n--- sshd log ({server.host}:{server.port})\n{server.log()}")
