"""The lab's Dovecot stop: SIGTERM to the master, then it waits for the processes that
read and write mail (imap, lmtp, ...) and only for them; the bookkeeping left after
them (the master waiting on its log process for about a second, login, auth) is
killed. Processes are stood in for; nothing is started."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from chaos.services import postfix

MASTER, LOG, IMAP, LOGIN = 100, 101, 102, 103
EXE = {
    MASTER: "/usr/sbin/dovecot",
    LOG: "/usr/lib/dovecot/log",
    IMAP: "/usr/lib/dovecot/imap",
    LOGIN: "/usr/lib/dovecot/imap-login",
}


@pytest.fixture
def node(tmp_path: Path) -> postfix.NodePaths:
    lab = tmp_path / "lab"
    (lab / "mail1").mkdir(parents=True)
    (lab / "lab.json").write_text(json.dumps({"prefix": "t"}))
    return postfix.NodePaths(lab, "mail1")


def test_waits_for_the_mail_workers_then_kills_the_bookkeeping(
    node: postfix.NodePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    alive = {MASTER, LOG, IMAP, LOGIN}
    sent: list[tuple[int, int, bool]] = []  # (pid, signal, was imap still running)
    polls = {"n": 0}

    def processes(prefixes: tuple[str, ...]) -> list[int]:
        polls["n"] += 1
        if polls["n"] > 4:  # imap finishes its command a few polls after SIGTERM
            alive.discard(IMAP)
        return sorted(pid for pid in alive if EXE[pid].startswith(prefixes))

    def kill(pid: int, sig: int) -> None:
        sent.append((pid, sig, IMAP in alive))
        if sig == signal.SIGKILL:
            alive.discard(pid)

    monkeypatch.setattr(postfix, "node_processes", processes)
    monkeypatch.setattr(postfix, "_exe", lambda pid: EXE.get(pid, ""))
    monkeypatch.setattr(postfix.os, "kill", kill)
    monkeypatch.setattr(postfix.time, "sleep", lambda s: None)

    assert postfix.stop_dovecot(node, 5.0) == 0
    assert sent[0] == (MASTER, signal.SIGTERM, True)
    killed = [(pid, running) for pid, sig, running in sent if sig == signal.SIGKILL]
    assert {pid for pid, _ in killed} == {MASTER, LOG, LOGIN}
    assert not any(running for _, running in killed)  # never while imap still worked
    assert not alive


def test_a_mail_worker_that_outlives_the_timeout_is_killed_too(
    node: postfix.NodePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    alive = {MASTER, IMAP}
    clock = {"t": 0.0}

    def kill(pid: int, sig: int) -> None:
        if sig == signal.SIGKILL:
            alive.discard(pid)

    def sleep(s: float) -> None:
        clock["t"] += max(s, 0.5)

    monkeypatch.setattr(
        postfix, "node_processes", lambda pre: sorted(p for p in alive if EXE[p].startswith(pre))
    )
    monkeypatch.setattr(postfix, "_exe", lambda pid: EXE.get(pid, ""))
    monkeypatch.setattr(postfix.os, "kill", kill)
    monkeypatch.setattr(postfix.time, "sleep", sleep)
    monkeypatch.setattr(postfix.time, "monotonic", lambda: clock["t"])

    assert postfix.stop_dovecot(node, 2.0) == 0
    assert not alive and clock["t"] >= 2.0




def test_postfix_stop_signals_the_master_and_does_not_wait_in_seconds(
    node: postfix.NodePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`postfix stop` looks for the master again only after a second's sleep; the lab's
    stop sends the same SIGTERM itself and polls."""
    master, child = 200, 201
    exe = {master: postfix.POSTFIX_BIN + "master", child: postfix.POSTFIX_BIN + "smtpd"}
    alive = {master, child}
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(
        postfix, "node_processes", lambda pre: sorted(p for p in alive if exe[p].startswith(pre))
    )
    monkeypatch.setattr(postfix, "_interval_open", lambda p: True)

    def kill(pid: int, sig: int) -> None:
        sent.append((pid, sig))
        if sig == signal.SIGTERM:  # the master passes it on and exits
            alive.clear()

    def no_subprocess(*a: object, **kw: object) -> None:
        raise AssertionError(f"ran {a[0]!r}: the stop must not wait on postfix-script")

    monkeypatch.setattr(postfix.os, "kill", kill)
    monkeypatch.setattr(postfix.subprocess, "run", no_subprocess)
    assert postfix.stop_postfix(node, 5.0) == 0
    assert sent == [(master, signal.SIGTERM)]
