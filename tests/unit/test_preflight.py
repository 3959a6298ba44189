"""--check and start-up checks: ZooKeeper access, the state dir, owners
and modes of what root runs or trusts, TLS and operator config. Runs as root, so
"not root-owned" is made with chown to nobody."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from failoverd.checks.preflight import authorized_keys_notes, preflight, state_dir_problems
from failoverd.checks.report import check_report
from failoverd.config import ConfigError, load_config
from failoverd.zk.acl import digest_id, expected
from failoverd.zk.client import tls_kwargs
from tests.support.access import state_dir_for
from tests.support.certs import CA

NOBODY = 65534


def secret(tmp_path: Path, name: str = "zk.secret", text: str = "failoverd:s3cret") -> str:
    path = tmp_path / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def config(tmp_path: Path, **zk: Any) -> dict[str, Any]:
    return {
        "cluster": "mail-east",
        "node": {
            "name": "mail1",
            "address": "10.0.0.11",
            "state_dir": str(state_dir_for(tmp_path, "mail1")),
        },
        "peers": {"mail2": {"address": "10.0.0.12"}},
        "zookeeper": {
            "hosts": "zk1:2181",
            "auth": {"scheme": "digest", "credential_file": secret(tmp_path)},
            **zk,
        },
        "fencing": [{"type": "command", "argv": ["/bin/true", "{node}"]}],
    }


def write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "failoverd.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def problems_of(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    return preflight(load_config(write(tmp_path, data)))[0]


# --- ZooKeeper closed by default -----------------------------------------------------


def test_no_auth_is_an_error_unless_insecure_is_set(tmp_path: Path) -> None:
    data = config(tmp_path)
    del data["zookeeper"]["auth"]
    path = write(tmp_path, data)
    code, text = check_report(path)
    assert code == 2
    assert f"{path}: zookeeper.auth: is required" in text
    data["zookeeper"]["insecure"] = True
    code, text = check_report(write(tmp_path, data))
    assert code == 0, text
    assert "note: zookeeper.insecure: the cluster's tree is open" in text


def test_insecure_and_auth_together_is_a_contradiction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="zookeeper.insecure: true contradicts"):
        load_config(write(tmp_path, config(tmp_path, insecure=True)))


def test_operators_are_digest_ids_and_need_node_auth(tmp_path: Path) -> None:
    alice = digest_id("alice", "pw")
    c = load_config(write(tmp_path, config(tmp_path, operators=[alice])))
    assert c.zookeeper.operators == (alice,)
    acls = expected(c)
    assert acls is not None
    assert {(a.id.id, a.perms) for a in acls["control"]} >= {(alice, 1 | 2)}
    assert {(a.id.id, a.perms) for a in acls["active"]} >= {(alice, 1)}
    assert all(a.perms == 31 for a in acls["lock"] if a.id.id != alice)
    with pytest.raises(ConfigError, match=r"zookeeper.operators\[0\]: expected a digest id"):
        load_config(write(tmp_path, config(tmp_path, operators=["alice:password"])))
    data = config(tmp_path, operators=[alice], insecure=True)
    del data["zookeeper"]["auth"]
    with pytest.raises(ConfigError, match="zookeeper.operators: needs zookeeper.auth"):
        load_config(write(tmp_path, data))


def test_digest_id_matches_zookeepers_own() -> None:
    # java -cp zookeeper.jar org.apache.zookeeper.server.auth.DigestAuthenticationProvider
    # super:superpw  (Debian's ZooKeeper 3.8) prints this id.
    assert digest_id("super", "superpw") == "super:g9oN2HttPfn8MMWJZ2r45Np/LIA="


def test_tls_block_is_validated_and_becomes_kazoo_arguments(tmp_path: Path) -> None:
    authority = CA.make("test CA")
    ca = Path(authority.write(tmp_path / "ca.pem"))
    cert, key = authority.issue(["mail1"], tmp_path / "client.pem", tmp_path / "client.key")
    tls = {"ca": str(ca), "cert": cert, "key": key}
    c = load_config(write(tmp_path, config(tmp_path, tls=tls)))
    assert c.zookeeper.tls is not None
    assert tls_kwargs(c.zookeeper.tls) == {
        "use_ssl": True,
        "verify_certs": True,
        "check_hostname": True,
        "ca": str(ca),
        "certfile": str(cert),
        "keyfile": key,
    }
    only_ca = load_config(write(tmp_path, config(tmp_path, tls={"ca": str(ca)})))
    assert only_ca.zookeeper.tls is not None
    assert tls_kwargs(only_ca.zookeeper.tls) == {
        "use_ssl": True,
        "verify_certs": True,
        "check_hostname": True,
        "ca": str(ca),
    }
    os.chmod(key, 0o644)
    bad = {"ca": str(tmp_path / "nope.pem"), "cert": cert, "key": key}
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, config(tmp_path, tls=bad)))
    text = "\n".join(e.value.problems)
    assert "zookeeper.tls.ca: " in text and "is not a file" in text
    assert "zookeeper.tls.key: " in text and "chmod 600" in text
    with pytest.raises(ConfigError, match="cert and key go together"):
        load_config(write(tmp_path, config(tmp_path, tls={"ca": str(ca), "cert": cert})))


def test_tls_files_that_do_not_load_are_errors_with_their_key(tmp_path: Path) -> None:
    """A CA file without a certificate (or a cert/key pair that does not load) would
    fail every connect later, quietly; it is a config error now."""
    authority = CA.make("test CA")
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("x")
    cert, _ = authority.issue(["mail1"], tmp_path / "client.pem", tmp_path / "client.key")
    other_key = secret(tmp_path, "other.key", "k")
    tls = {"ca": str(not_pem), "cert": cert, "key": other_key}
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, config(tmp_path, tls=tls)))
    text = "\n".join(e.value.problems)
    assert f"zookeeper.tls.ca: {not_pem} holds no PEM CA certificate" in text, text
    assert f"zookeeper.tls.cert: {cert} with key {other_key} does not load" in text, text


def test_client_gets_tls_arguments(tmp_path: Path) -> None:
    from failoverd.zk.client import make_client

    ca = Path(CA.make("test CA").write(tmp_path / "ca.pem"))
    c = load_config(write(tmp_path, config(tmp_path, tls={"ca": str(ca)})))
    client = make_client(c)
    assert client.use_ssl is True and client.ca == str(ca) and client.verify_certs is True
    assert client.handler.tls is not None and client.handler.tls.check_hostname is True


# --- the state dir ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["/tmp/failoverd-state", "/var/tmp/failoverd-state"])  # noqa: S108
def test_state_dir_under_tmp_is_refused(where: str) -> None:
    (problem,) = state_dir_problems(where, create=False)
    assert problem.startswith(f"node.state_dir: {where} is under") and "PrivateTmp" in problem


def test_state_dir_must_be_root_owned_mode_0700_and_no_symlink(tmp_path: Path) -> None:
    d = state_dir_for(tmp_path, "sd")
    assert state_dir_problems(str(d)) == []
    os.chmod(d, 0o755)
    assert state_dir_problems(str(d)) == [f"node.state_dir: {d} has mode 0755: chmod 0700 {d}"]
    os.chmod(d, 0o700)
    os.chown(d, NOBODY, -1)
    assert "not root: chown root" in state_dir_problems(str(d))[0]
    os.chown(d, 0, -1)
    link = d.parent / "link"
    link.symlink_to(d)
    assert "a symlink is not accepted" in state_dir_problems(str(link))[0]
    assert "not an absolute path" in state_dir_problems("var/lib/failoverd")[0]


def test_missing_state_dir_is_created_0700_and_probed(tmp_path: Path) -> None:
    parent = state_dir_for(tmp_path, "parent")
    d = parent / "state"
    assert state_dir_problems(str(d)) == []
    assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o700
    assert list(d.iterdir()) == []  # the probe file is gone


def test_check_reports_a_bad_state_dir(tmp_path: Path) -> None:
    data = config(tmp_path)
    d = Path(data["node"]["state_dir"])
    os.chmod(d, 0o775)
    code, text = check_report(write(tmp_path, data))
    assert code == 2 and f"node.state_dir: {d} has mode 0775" in text


# --- owners and modes of what root runs or trusts ---------------------------------------


def test_config_file_and_programs_not_owned_by_root_are_errors(tmp_path: Path) -> None:
    prog = tmp_path / "pdu-off"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    data = config(tmp_path)
    data["fencing"] = [{"type": "command", "argv": [str(prog), "{node}"]}]
    path = write(tmp_path, data)
    assert problems_of(tmp_path, data) == []
    os.chown(prog, NOBODY, -1)
    os.chown(path, NOBODY, -1)
    probs = problems_of(tmp_path, data)
    assert any(f"fencing[0].argv: program {prog} is owned by uid {NOBODY}" in p for p in probs)
    assert any(f"config: config file {path} is owned by uid {NOBODY}" in p for p in probs)
    os.chown(prog, 0, -1)
    os.chown(path, 0, -1)
    prog.chmod(0o775)
    (problem,) = problems_of(tmp_path, data)
    assert (
        "fencing[0].argv: program" in problem and "writable by group/others (mode 0775)" in problem
    )


def test_program_in_a_directory_others_can_write_is_an_error(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    prog = bindir / "check-spool"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    bindir.chmod(0o777)  # not sticky: anyone may replace the program
    data = config(tmp_path)
    data["health"] = {"checks": [{"type": "command", "argv": [str(prog)]}]}
    (problem,) = problems_of(tmp_path, data)
    assert problem.startswith(f"{tmp_path}/failoverd.yaml: health.checks[0].argv: program {prog}")
    assert f"directory {bindir} is not root-owned or is writable" in problem


def test_known_hosts_and_key_must_be_root_owned(tmp_path: Path) -> None:
    known, key = tmp_path / "known_hosts", tmp_path / "fence_key"
    known.write_text("x")
    key.write_text("x")
    key.chmod(0o600)
    data = config(tmp_path)
    data["fencing"].insert(
        0,
        {"type": "ssh", "user": "root", "key_file": str(key), "known_hosts": str(known),
         "verify_ports": [25]},
    )  # fmt: skip
    assert problems_of(tmp_path, data) == []
    known.chmod(0o666)
    os.chown(key, NOBODY, -1)
    probs = problems_of(tmp_path, data)
    assert any(
        p.endswith(f"fencing[0].known_hosts: file {known} is writable by group/others (mode 0666)")
        for p in probs
    )  # noqa: E501
    assert any(f"fencing[0].key_file: file {key} is owned by uid {NOBODY}" in p for p in probs)


def test_non_loopback_metrics_listen_is_noted(tmp_path: Path) -> None:
    data = config(tmp_path)
    data["metrics"] = {"listen": "0.0.0.0:9468"}
    code, text = check_report(write(tmp_path, data))
    assert code == 0, text
    assert "note: metrics.listen: 0.0.0.0:9468 is not loopback" in text
    data["metrics"] = {"listen": "127.0.0.1:9468"}
    assert "metrics.listen" not in check_report(write(tmp_path, data))[1]


def test_a_state_dir_other_than_the_units_is_noted_with_the_drop_in(tmp_path: Path) -> None:
    code, text = check_report(write(tmp_path, config(tmp_path)))
    assert code == 0, text
    assert "ReadWritePaths=/run/failoverd-test/" in text and "systemctl edit failoverd" in text


def _sshd_config(tmp_path: Path, keys: Path) -> Path:
    host_key = tmp_path / "host_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
        check=True,
        capture_output=True,
    )
    cfg = tmp_path / "sshd_config"
    cfg.write_text(f"HostKey {host_key}\nAuthorizedKeysFile {keys} .ssh/none_%u\nUsePAM no\n")
    return cfg


@pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="openssh-server not installed")
def test_a_fence_users_authorized_keys_not_owned_by_root_is_noted(tmp_path: Path) -> None:
    # This node is its peer's fencing target: whoever can rewrite the forced command
    # in the fence user's authorized_keys turns every fence of this node into a no-op.
    keys = tmp_path / "keys" / "authorized_keys"
    keys.parent.mkdir()
    keys.write_text("restrict ssh-ed25519 AAAA test\n")
    os.chmod(keys, 0o600)
    data = config(tmp_path)
    data["fencing"] = [
        {"type": "ssh", "user": "root", "key_file": "/k", "known_hosts": "/kh"},
    ]
    cfg = load_config(write(tmp_path, data))
    sshd_config = _sshd_config(tmp_path, keys)
    # /tmp/pytest-of-root/... is root-owned and not group/other-writable above the
    # sticky /tmp: a root-owned file there is fine.
    assert authorized_keys_notes(cfg, str(sshd_config)) == []
    os.chown(keys, NOBODY, -1)
    (note,) = authorized_keys_notes(cfg, str(sshd_config))
    assert note.startswith("fencing (sshd AuthorizedKeysFile for root): authorized_keys")
    assert f"{keys} is owned by uid {NOBODY}, not root" in note
