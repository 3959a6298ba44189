"""Every program root runs is held to one ownership rule (checks/preflight.py
`root_programs`): resources' start/stop/status, command health checks, fencing argv
and check_argv, hooks, OCF agents, and the script an interpreter is handed. A
world-writable script anywhere in that list lets its writer run code as root.

Runs as root: "not root-owned" is made with chown to nobody, modes with chmod."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from failoverd.checks.preflight import preflight
from failoverd.checks.programs import root_programs
from failoverd.checks.report import check_report
from failoverd.config import load_config
from tests.support.access import state_dir_for

NOBODY = 65534


def script(tmp_path: Path, name: str, mode: int = 0o755) -> Path:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def yaml_text(tmp_path: Path, tail: str) -> str:
    secret = tmp_path / "zk.secret"
    secret.write_text("failoverd:s3cret\n")
    secret.chmod(0o600)
    path = tmp_path / "failoverd.yaml"
    path.write_text(
        f"""\
cluster: mail-east
node: {{name: mail1, address: 10.0.0.11, state_dir: {state_dir_for(tmp_path, "mail1")}}}
peers: {{mail2: {{address: 10.0.0.12}}}}
zookeeper:
  hosts: zk1:2181
  auth: {{scheme: digest, credential_file: {secret}}}
{tail}"""
    )
    return str(path)


def test_hook_and_check_argv_scripts_are_held_to_the_fencing_argv_rule(tmp_path: Path) -> None:
    hook = script(tmp_path, "page", 0o777)
    status = script(tmp_path, "pdu-status", 0o777)
    path = yaml_text(
        tmp_path,
        f"""\
fencing:
  - {{type: command, argv: [/bin/true, "{{node}}"], check_argv: [{status}, "{{node}}"]}}
hooks:
  - {{"on": [promoted], argv: [{hook}, /etc/failoverd/pager.url]}}
""",
    )
    code, text = check_report(path, machine=False)
    assert code == 2, text
    assert f"{path}: fencing[0].check_argv: program {status} is writable by group/others" in text
    assert f"{path}: hooks[0].argv: program {hook} is writable by group/others" in text


def test_the_script_an_interpreter_runs_is_checked(tmp_path: Path) -> None:
    start = script(tmp_path, "mount-store")
    stop = script(tmp_path, "umount-store")
    check = script(tmp_path, "check.py")
    hook = script(tmp_path, "hook.pl")
    path = yaml_text(
        tmp_path,
        f"""\
resources:
  - {{type: command, start: [/bin/sh, {start}], stop: [bash, -e, {stop}]}}
health:
  checks:
    - {{type: command, argv: [/usr/bin/env, python3, -u, {check}], timeout: 5s}}
    - {{type: command, argv: [/bin/sh, -c, "exit 0"], timeout: 5s}}
fencing:
  - {{type: command, argv: [/bin/true, "{{node}}"]}}
hooks:
  - {{"on": [promoted], argv: [perl, {hook}]}}
""",
    )
    config = load_config(path)
    assert preflight(config)[0] == []
    for p in (start, stop, check, hook):
        os.chown(p, NOBODY, -1)
    problems = preflight(config)[0]
    assert problems == [
        f"{path}: health.checks[0].argv[3]: script {check} is owned by uid {NOBODY}, not root",
        f"{path}: resources[0].start[1]: script {start} is owned by uid {NOBODY}, not root",
        f"{path}: resources[0].stop[2]: script {stop} is owned by uid {NOBODY}, not root",
        f"{path}: hooks[0].argv[1]: script {hook} is owned by uid {NOBODY}, not root",
    ]
    # `sh -c TEXT` runs no file: nothing more than /bin/sh itself is listed for it.
    listed = [at for at, _prog, _what in root_programs(config)]
    assert "health.checks[1].argv" in listed and "health.checks[1].argv[2]" not in listed


def test_an_ocf_agent_not_owned_by_root_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = tmp_path / "ocf" / "resource.d" / "lab" / "Thing"
    agent.parent.mkdir(parents=True)
    agent.write_text("#!/bin/sh\nexit 0\n")
    agent.chmod(0o755)
    monkeypatch.setenv("OCF_ROOT", str(tmp_path / "ocf"))
    path = yaml_text(
        tmp_path,
        """\
resources:
  - {type: ocf, agent: "lab:Thing"}
fencing:
  - {type: command, argv: [/bin/true, "{node}"]}
""",
    )
    config = load_config(path)
    assert preflight(config)[0] == []
    agent.chmod(0o757)
    assert preflight(config)[0] == [
        f"{path}: resources[0].agent: program {agent} is writable by group/others (mode 0757)"
    ]


def test_check_finds_a_check_argv_program_that_is_missing(tmp_path: Path) -> None:
    """host.py and the ownership rule read one list (programs.root_argvs): the
    readiness probe's check_argv is looked for like every other program."""
    from tests.unit.test_host_checks import findings, machine, program

    ok = program(tmp_path, "pdu-off")
    gone = str(tmp_path / "bin" / "pdu-status")
    found = findings(
        tmp_path,
        machine(tmp_path),
        fencing=[{"type": "command", "argv": [ok, "{node}"], "check_argv": [gone, "{node}"]}],
    )
    assert [(f.severity, f.at) for f in found] == [("error", "fencing[0].check_argv")]
    assert "does not exist" in found[0].message
