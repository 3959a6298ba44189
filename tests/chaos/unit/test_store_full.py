"""The toy store full (scenario 31): the write fails before a byte lands, the service
answers 452 (never 250 unless the control's planted bug is set), and resumes after."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from chaos.records import read_records
from chaos.services import toy_smtp as service_module
from chaos.services.toy_smtp import Paths, SmtpService
from chaos.services.toy_store import FULL, Store, StoreFull

BODY = b"Subject: x\r\nX-Chaos-Msg: 7\r\n\r\nhello\r\n.\r\n"


def test_a_full_store_refuses_the_write_with_enospc_and_records_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write(1, "mail1", 1)
    (tmp_path / FULL).write_text("full\n")
    assert store.available()  # mounted and writable: a full store is not "unhealthy"
    with pytest.raises(StoreFull) as e:
        store.write(2, "mail1", 1)
    assert e.value.errno == errno.ENOSPC
    assert [r["msg"] for r in read_records(store.path)] == [1]


@pytest.fixture(autouse=True)
def server_imports() -> None:
    service_module._load_asyncio()  # what `serve` does first (resource commands skip it)


def deliver(service: SmtpService) -> str:
    return asyncio.run(service._deliver(BODY))


def test_the_service_answers_452_while_full_and_250_once_space_is_freed(tmp_path: Path) -> None:
    p = Paths(tmp_path, "mail1")
    service = SmtpService(p, fenced=False)
    (p.store / FULL).parent.mkdir(parents=True)
    (p.store / FULL).write_text("full\n")
    assert deliver(service).startswith("452 4.3.1")
    assert [r["event"] for r in read_records(p.events)] == ["store_write_failed"]
    (p.store / FULL).unlink()
    assert deliver(service).startswith("250")
    assert [r["msg"] for r in read_records(p.store / "messages.jsonl")] == [7]


def test_the_planted_bug_acks_what_the_full_store_refused(tmp_path: Path) -> None:
    """The negative control store-full-acks depends on this lie being told."""
    p = Paths(tmp_path, "mail1")
    (p.store / FULL).parent.mkdir(parents=True)
    (p.store / FULL).write_text("full\n")
    p.bug_ack_unstored.parent.mkdir(parents=True)
    p.bug_ack_unstored.write_text("planted\n")
    assert deliver(SmtpService(p, fenced=False)).startswith("250")
    assert read_records(p.store / "messages.jsonl") == []
