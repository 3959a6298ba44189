"""Secrets stay out of what leaves the node: a failed resource command is described by
its config key path and exit status, never its command line or output, and the
redaction net behind that (failoverd/observe/redact.py) knows the common shapes."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from failoverd.config import (
    CommandResourceConfig,
    HookConfig,
    OcfResourceConfig,
    SystemdResourceConfig,
    VipResourceConfig,
)
from failoverd.observe.endpoints import NodeView, StatusServer
from failoverd.observe.hooks import HookEvent, HookRunner
from failoverd.observe.redact import redact
from failoverd.resources.base import ResourceError, ResourceTimeout
from failoverd.resources.build import build_resources
from failoverd.resources.systemd import SystemdResource

SECRET = "hunter2"

# --- the redaction net -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "env PGPASSWORD=hunter2 psql -h db",
        "MYSQL_PWD=hunter2 mysqladmin ping",
        "mysql -uroot -phunter2 -e 'select 1'",
        "curl -u ops:hunter2 https://pdu.example/off",
        "curl --user ops:hunter2 https://pdu.example/off",
        "sshpass -p hunter2 ssh pdu off",
        "ldapsearch --bind-passphrase=hunter2 -x",
        "REDIS_PASSWORD=hunter2 redis-cli ping",
        "export SMTP_PASS='hunter2'",
        "AWS_SECRET_ACCESS_KEY=hunter2 aws s3 ls",
        "secret_key: hunter2",
    ],
)
def test_more_secret_shapes_are_redacted(text: str) -> None:
    out = redact(text)
    assert SECRET not in out and "***" in out, out


def test_ordinary_flags_are_left_alone() -> None:
    for text in (
        "ip -o addr show dev eth0",
        "postqueue -p",
        "sort -u users.txt",
        "resources[0].start (command): exited with 3",
        "mkdir -p /var/spool/postfix",
        "exit 1: 3 tests passed: 5 failed",
        "health check failing: command /usr/local/bin/check-spool --queue active",
    ):
        assert redact(text) == text


# --- failures described by their key path ---------------------------------------------

LEAKY = (sys.executable, "-c", "import sys; print(sys.argv[1:]); sys.exit(3)")
SECRETS = (f"--password={SECRET}", f"PGPASSWORD={SECRET}", f"-p{SECRET}")


def command(start: tuple[str, ...], timeout: float = 5.0) -> CommandResourceConfig:
    return CommandResourceConfig(start=start, stop=("true",), timeout=timeout)


def test_a_command_resource_is_named_by_its_place_in_the_config() -> None:
    vip = VipResourceConfig("192.0.2.25/24", "eth0")
    cmd = command(("env", f"PGPASSWORD={SECRET}", "sh", "-c", f"mysql -p{SECRET}"))
    resources = build_resources([vip, cmd])
    assert resources[1].name == "command resources[1]"
    assert resources[0].name == "vip 192.0.2.25/24 on eth0"


def test_a_failed_command_start_names_its_key_path_and_exit_status() -> None:
    res = build_resources([command(("true",)), command((*LEAKY, *SECRETS))])[1]
    with pytest.raises(ResourceError) as e:
        res.start({})
    assert str(e.value) == "resources[1].start (command): exited with 3"


def test_a_command_that_cannot_run_or_times_out_names_only_its_key_path(tmp_path: Path) -> None:
    missing = str(tmp_path / f"bin-{SECRET}")
    with pytest.raises(ResourceError) as e:
        build_resources([command((missing, f"--password={SECRET}"))])[0].start({})
    assert str(e.value).startswith("resources[0].start (command): could not run: ")
    assert SECRET not in str(e.value) and missing not in str(e.value)
    slow = command(("sh", "-c", f"echo {SECRET}; sleep 5"), timeout=0.3)
    with pytest.raises(ResourceTimeout) as t:
        build_resources([slow])[0].start({})
    assert str(t.value) == "resources[0].start (command): timed out after 0.3s"


def test_a_failed_systemctl_names_the_key_path_and_the_units(tmp_path: Path) -> None:
    res = SystemdResource(
        SystemdResourceConfig(("postfix@-.service",), timeout=5.0),
        systemctl="false",
        unit_dir=tmp_path,
        key="resources[2]",
    )
    with pytest.raises(ResourceError) as e:
        res.start({})
    assert str(e.value) == (
        "resources[2].start (systemd postfix@-.service): daemon-reload exited with 1"
    )


def test_an_ocf_resource_is_named_by_agent_and_key_path_never_a_parameter() -> None:
    cfg = OcfResourceConfig("heartbeat:IPaddr2", (("password", SECRET), ("ip", "192.0.2.9")))
    res = build_resources([command(("true",)), cfg])[1]
    assert res.name == "ocf heartbeat:IPaddr2 resources[1]"


# --- the net where reasons leave the node ------------------------------------------------

VIEW = NodeView(
    node="mail1",
    cluster="east",
    role="standby",
    epoch=None,
    healthy=True,
    eligible=False,
    why=f"health check failing: command check --password={SECRET}",
    maintenance=False,
    reason=f"demoting: start failed: PGPASSWORD={SECRET} mysql -p{SECRET}",
    version="1.0",
)


def test_status_is_redacted_like_the_member_znode() -> None:
    server = StatusServer(None, lambda: b"", 10.0)
    server.publish(VIEW)
    code, _, body = server.answer("/status")
    assert code == 200 and SECRET not in body.decode()
    assert json.loads(body)["reason"].startswith("demoting: start failed: PGPASSWORD=***")
    _, _, why = server.answer("/standby")
    assert SECRET not in why.decode()


def test_a_hook_gets_the_reason_redacted() -> None:
    runner = HookRunner([HookConfig(("demoted",), ("/bin/true",))], "east", "mail1")
    env = runner.env(HookEvent("demoted", 3, VIEW.reason, None))
    assert SECRET not in env["FAILOVERD_REASON"]
    assert env["FAILOVERD_REASON"].startswith("demoting: start failed:")
    env = runner.env(replace(HookEvent("fenced", 3, "", "mail2"), reason=f"token={SECRET}"))
    assert SECRET not in env["FAILOVERD_REASON"]


def test_failed_starts_are_counted_by_key_path() -> None:
    from failoverd.observe.metrics import Metrics

    metrics = Metrics(None, "mail1", "east")
    metrics.resource_failed("resources[2].start")
    text = metrics.render().decode()
    assert 'failoverd_resource_failures_total{operation="resources[2].start"} 1.0' in text
