"""Hooks handed hostile text: a reason is free text that can carry what a peer's
ssh, a fence command or a resource printed, control characters included. The
example webhook must still post valid JSON, and the daemon's hook runner must
still run the hook when a value holds a NUL (which no environment or argv can
carry): the value is made safe and logged, never the hook skipped.

Real processes: the shipped page-webhook, posting to a receiver on loopback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from structlog.testing import capture_logs

from failoverd.config import HookConfig
from failoverd.observe.hooks import HookRunner
from tests.integration.cluster import wait_for
from tests.support.webhook import receiver

HOOKS = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "hooks"
HOSTILE = 'fence: "pdu" said \x1b]0;owned\x07\x1b[2J\\ \x01\ttab\nline é'


def test_the_webhook_example_posts_valid_json_whatever_the_reason_holds(tmp_path: Path) -> None:
    with receiver(tmp_path) as pager:
        url, got = pager.url, pager.bodies
        env = {
            "PATH": os.environ["PATH"],
            "FAILOVERD_EVENT": "fence_failed",
            "FAILOVERD_NODE": "mail1",
            "FAILOVERD_CLUSTER": "east",
            "FAILOVERD_EPOCH": "4",
            "FAILOVERD_PEER": "mail2",
            "FAILOVERD_REASON": HOSTILE,
        }
        run = [str(HOOKS / "page-webhook"), str(url)]
        out = subprocess.run(run, env=env, capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
    body = got[0].decode("utf-8")
    assert "\x1b" not in body  # escaped as \u001b, not sent raw
    assert json.loads(body) == {
        "event": "fence_failed", "node": "mail1", "cluster": "east", "epoch": "4",
        "peer": "mail2", "reason": HOSTILE,
    }  # fmt: skip


def test_a_nul_in_a_reason_is_made_safe_and_the_hook_still_runs(tmp_path: Path) -> None:
    with receiver(tmp_path) as pager:
        url, got = pager.url, pager.bodies
        hook = HookConfig(("fence_failed",), (str(HOOKS / "page-webhook"), str(url)), 10.0)
        runner = HookRunner([hook], "east", "mail1")
        with capture_logs() as logs:
            runner.start()
            try:
                runner.fire("fence_failed", epoch=4, reason="ssh: \x00\x1b[31mdown", peer="mail2")
                wait_for(lambda: got, 20, "the hook's page")
            finally:
                runner.stop()
    assert json.loads(got[0])["reason"] == "ssh: \\x00\x1b[31mdown"
    made_safe = [e for e in logs if e["event"] == "hook_value_made_safe"]
    assert made_safe and made_safe[0]["names"] == ["FAILOVERD_REASON"], logs
