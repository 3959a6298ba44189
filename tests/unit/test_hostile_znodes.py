"""Every znode reader against hostile bytes: whatever a znode holds,
decoding returns a value within bounds or raises ZnodeError, never anything else.
A ValueError or RecursionError escaping a decoder stops the daemon's loop."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import pytest

from failoverd.node.recent import RecentIds
from failoverd.zk.znodes import (
    EPOCH_LIMIT,
    MAX_REQUEST_TIMEOUT,
    MAX_ZNODE_BYTES,
    REQUEST_ID,
    Breadcrumb,
    Control,
    HistoryEntry,
    LockData,
    MemberStatus,
    Request,
    ZnodeError,
    encode,
)

RID = "0f8fad5b-d9cb-469f-a165-70867728950e"
VALID: dict[str, Any] = {
    "lock": LockData("mail1", "0x1"),
    "active": Breadcrumb("mail1", 7, "t", False),
    "member": MemberStatus("mail1", "active", True, 7, "1.0", "10.0.0.1", False, "r", "t", 0),
    "control": Control(False, Request(RID, "mail2", 10.0, "alice", "t", "kernel update")),
    "history": HistoryEntry("t", "mail1", "promoted", 7, "fenced mail2", "alice"),
}
DECODERS: dict[str, Callable[[bytes], Any]] = {
    "lock": LockData.decode,
    "active": Breadcrumb.decode,
    "member": MemberStatus.decode,
    "control": Control.decode,
    "history": HistoryEntry.decode,
}
HUGE_INT = "9" * 5000  # int() refuses > 4300 digits with ValueError
DEEP = "[" * 100_000 + "]" * 100_000


def _nest(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


POISON = [
    b"",
    b"\xff\xfe\x00",  # not UTF-8
    b'{"v":1,"epoch":' + HUGE_INT.encode() + b"}",
    b'{"v":' + HUGE_INT.encode() + b"}",
    DEEP.encode()[:MAX_ZNODE_BYTES],
    _nest(5000).encode(),
    b'{"v":1,"epoch":NaN}',
    b'{"v":1,"epoch":Infinity}',
    b'{"v":1,"epoch":-Infinity}',
    b'{"v":1,"timeout":1e999}',
    b'{"v":1}' + b" " * MAX_ZNODE_BYTES,
    b"[]",
    b"null",
    b'"v"',
    b'{"v":1.0}',
    b'{"v":true}',
]


def _fields(kind: str) -> dict[str, Any]:
    return json.loads(encode(VALID[kind]))


def _hostile_values(rng: random.Random) -> Iterator[Any]:
    yield from (
        None,
        True,
        -1,
        0,
        2**53,
        2**63,
        -(2**53),
        1.5,
        "",
        "x" * 5000,
        "\x1b[2J\x1b]0;pwned\x07",
        "../../etc",
        [],
        {},
        [[[]]],
        {"id": 1},
    )
    yield rng.randrange(-(10**30), 10**30)
    yield "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(1, 40)))


def _mutations(kind: str, rng: random.Random) -> Iterator[bytes]:
    base = _fields(kind)
    good = encode(VALID[kind])
    values = list(_hostile_values(rng))
    # every field replaced by every hostile value, and removed
    for key in base:
        for value in values:
            yield json.dumps({**base, key: value}).encode()
        yield json.dumps({k: v for k, v in base.items() if k != key}).encode()
    # the nested request objects, field by field
    if kind == "control":
        req = base["switchover"]
        for key in req:
            for value in values:
                yield json.dumps({**base, "switchover": {**req, key: value}}).encode()
    # byte-level damage of a valid encoding
    for _ in range(300):
        b = bytearray(good)
        op = rng.randrange(4)
        if op == 0:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1:
            del b[rng.randrange(len(b)) :]
        elif op == 2:
            pos = rng.randrange(len(b))
            b[pos:pos] = rng.choice([b"9" * 4400, b"[" * 3000, b"NaN", b"1e999", b"\x00", b'"'])
        else:
            b = bytearray(rng.randbytes(rng.randrange(1, 200)))
        yield bytes(b)


def _check_bounds(value: Any) -> None:
    """What a decoder may return: epochs below 2^53, finite clamped timeouts,
    request ids of the fixed form."""
    for name in ("epoch",):
        epoch = getattr(value, name, None)
        assert epoch is None or 0 <= epoch < EPOCH_LIMIT
    if isinstance(value, Control):
        for req in (value.switchover, value.failover):
            if req is not None:
                assert REQUEST_ID.fullmatch(req.id)
                assert math.isfinite(req.timeout) and 0 <= req.timeout <= MAX_REQUEST_TIMEOUT


def _decode_or_znode_error(kind: str, raw: bytes) -> None:
    try:
        value = DECODERS[kind](raw)
    except ZnodeError:
        return
    _check_bounds(value)


@pytest.mark.parametrize("kind", sorted(DECODERS))
@pytest.mark.parametrize("raw", POISON, ids=range(len(POISON)))
def test_poison_is_a_znode_error_never_another_exception(kind: str, raw: bytes) -> None:
    with pytest.raises(ZnodeError):
        DECODERS[kind](raw)


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_fuzzed_znodes_decode_within_bounds_or_raise_znode_error(kind: str) -> None:
    rng = random.Random(f"failoverd-{kind}")  # reproducible
    count = 0
    for raw in _mutations(kind, rng):
        _decode_or_znode_error(kind, raw)
        count += 1
    assert count > 300


def test_valid_znodes_still_round_trip() -> None:
    for kind, value in VALID.items():
        assert DECODERS[kind](encode(value)) == value


def test_a_5000_digit_epoch_in_history_is_a_znode_error() -> None:
    raw = json.dumps({**_fields("history"), "epoch": 1}, separators=(",", ":"))
    raw = raw.replace('"epoch":1', f'"epoch":{HUGE_INT}')
    assert HUGE_INT in raw
    with pytest.raises(ZnodeError):
        HistoryEntry.decode(raw.encode())


def test_epochs_at_or_beyond_2_53_are_refused() -> None:
    for kind in ("active", "member", "history"):
        with pytest.raises(ZnodeError):
            DECODERS[kind](json.dumps({**_fields(kind), "epoch": EPOCH_LIMIT}).encode())
        ok = DECODERS[kind](json.dumps({**_fields(kind), "epoch": EPOCH_LIMIT - 1}).encode())
        assert ok.epoch == EPOCH_LIMIT - 1


def test_znodes_over_64_kib_are_refused() -> None:
    fields = {**_fields("history"), "reason": "x" * MAX_ZNODE_BYTES}
    with pytest.raises(ZnodeError, match="bytes"):
        HistoryEntry.decode(json.dumps(fields).encode())


def test_request_timeouts_are_clamped_and_ids_have_a_fixed_form() -> None:
    base = _fields("control")
    for timeout, expect in ((10**9, MAX_REQUEST_TIMEOUT), (-5, 0.0), (2.5, 2.5)):
        raw = json.dumps({**base, "switchover": {**base["switchover"], "timeout": timeout}})
        req = Control.decode(raw.encode()).switchover
        assert req is not None and req.timeout == expect
    for rid in ("x", RID.upper(), RID + "0", "../" + RID[3:], 7):
        raw = json.dumps({**base, "switchover": {**base["switchover"], "id": rid}})
        with pytest.raises(ZnodeError):
            Control.decode(raw.encode())


def test_member_and_lock_names_must_be_node_names() -> None:
    for kind in ("member", "lock", "history"):
        with pytest.raises(ZnodeError):
            DECODERS[kind](json.dumps({**_fields(kind), "node": "mail1\x1b[2J"}).encode())


def test_control_written_before_maintenance_by_existed_still_reads() -> None:
    old = {"v": 1, "maintenance": True, "switchover": None, "failover": None}
    c = Control.decode(json.dumps(old).encode())
    assert c.maintenance and c.maintenance_by == "" and c.maintenance_reason == ""
    assert asdict(Control.decode(encode(c))) == asdict(c)


def test_remembered_request_ids_are_bounded() -> None:
    ids = RecentIds(limit=64)
    for i in range(10_000):
        ids[f"id-{i}"] = float(i)
    assert len(ids) == 64
    assert "id-9999" in ids and "id-0" not in ids
    assert ids.get("id-9999", -1.0) == 9999.0
