"""The ``zookeeper:`` section: ensemble, session, lease margin, auth, operators, TLS."""

from __future__ import annotations

import os
import re
import ssl
from typing import Any

from failoverd.config.model import ZkAuthConfig, ZkTlsConfig, ZooKeeperConfig
from failoverd.config.reading import Findings, Section, check_private
from failoverd.config.schema import key, keys

# The keys the section may have (schema.py).
ZOOKEEPER_KEYS = keys("zookeeper")


def zookeeper_config(s: Section) -> ZooKeeperConfig:
    session = s.duration("session_timeout", ZooKeeperConfig.session_timeout)
    root = s.text("root", ZooKeeperConfig.root)
    if not root.startswith("/"):
        s.found.problem(
            s.key("root"), f"expected an absolute znode path like /failoverd, got {root!r}"
        )
    elif not root.rstrip("/"):
        # The cluster node would sit directly under /, which ZooKeeper creates open
        # to everyone (and recreates so after a data loss): anyone could create
        # another cluster's node there first.
        s.found.problem(
            s.key("root"),
            "must not be /: the clusters need a parent only their nodes may create "
            "under, like /failoverd",
        )
    auth = _zk_auth(s.section("auth", keys("zookeeper.auth"))) if s.has("auth") else None
    return ZooKeeperConfig(
        hosts=s.text("hosts"),
        session_timeout=session,
        root=root,
        auth=auth,
        # The margin must cover clock-rate drift and scheduling delay.
        lease_margin=s.duration("lease_margin", session / 4),
        **_zk_access(s, auth),
    )


_DIGEST_ID = re.compile(r"[^:\s]{1,64}:[A-Za-z0-9+/]{27}=")
_SASL_USER = re.compile(r"[^:\s\"]{1,64}")


def _zk_access(s: Section, auth: ZkAuthConfig | None) -> dict[str, Any]:
    """zookeeper.insecure, .operators and .tls (closed by default)."""
    has_auth = auth is not None
    insecure = s.flag("insecure", ZooKeeperConfig.insecure)
    if insecure and has_auth:
        s.found.problem(s.key("insecure"), "true contradicts zookeeper.auth: drop one of them")
    operators: list[str] = []
    sasl = auth is not None and auth.scheme == "sasl"
    for at, item in s.items("operators"):
        if isinstance(item, str) and (_SASL_USER if sasl else _DIGEST_ID).fullmatch(item):
            operators.append(item)
        else:
            shown = item if not isinstance(item, str) else item[:40]
            want = (
                "a user name of the servers' JAAS file (zookeeper.auth.scheme is sasl)"
                if sasl
                else "a digest id user:BASE64 (failoverctl digest USER)"
            )
            s.found.problem(at, f"expected {want}, got {shown!r}")
    if operators and not has_auth:
        s.found.problem(s.key("operators"), "needs zookeeper.auth (the nodes' own identity)")
    tls = None
    if s.has("tls"):
        t = s.section("tls", keys("zookeeper.tls"))
        ca, cert, key = t.text("ca"), t.text("cert", "") or None, t.text("key", "") or None
        for name, path in (("ca", ca), ("cert", cert), ("key", key)):
            if path and not os.path.isfile(path):
                s.found.problem(t.key(name), f"{path} is not a file")
        if (cert is None) != (key is None):
            s.found.problem(t.key("cert" if cert is None else "key"), "cert and key go together")
        if key and os.path.isfile(key):
            check_private(s.found, t.key("key"), key)
        _check_tls_files(t, ca, cert, key)
        tls = ZkTlsConfig(ca=ca, cert=cert, key=key)
    return {"insecure": insecure, "operators": tuple(operators), "tls": tls}


def _check_tls_files(t: Section, ca: str, cert: str | None, key: str | None) -> None:
    """The CA and the client certificate/key must load as the client will load them
    (failoverd.zk.tls): a CA file that holds no certificate would otherwise fail
    every connect, late and quietly, instead of here with its key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca and os.path.isfile(ca):
        try:
            ctx.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError) as e:
            t.found.problem(t.key("ca"), f"{ca} holds no PEM CA certificate ({_reason(e)})")
    if cert and key and os.path.isfile(cert) and os.path.isfile(key):
        try:
            ctx.load_cert_chain(certfile=cert, keyfile=key)
        except (ssl.SSLError, OSError) as e:
            t.found.problem(
                t.key("cert"), f"{cert} with key {key} does not load as PEM ({_reason(e)})"
            )


def _reason(e: Exception) -> str:
    return str(getattr(e, "reason", None) or getattr(e, "strerror", None) or e)


def _zk_auth(s: Section) -> ZkAuthConfig:
    spec = key("zookeeper.auth", "scheme")
    scheme = s.choice("scheme", str(spec.default), spec.options)
    path = s.text("credential_file")
    credential = _read_credential(s.found, s.key("credential_file"), path)
    return ZkAuthConfig("sasl" if scheme == "sasl" else "digest", path, credential)


def _read_credential(found: Findings, at: str, path: str) -> str:
    if not path:
        return ""
    try:
        if check_private(found, at, path):
            with open(path, encoding="utf-8") as f:
                credential = f.read().strip()
            if re.fullmatch(r"[^:\s]+:\S+", credential):
                return credential
            found.problem(at, f"{path} does not look like user:password")
    except (OSError, UnicodeDecodeError) as e:
        found.problem(at, f"cannot read {path}: {getattr(e, 'strerror', None) or e}")
    return ""
