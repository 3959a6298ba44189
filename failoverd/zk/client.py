"""The kazoo client of one cluster: its auth (the nodes' own or an operator's), TLS,
a bounded reconnect back-off and per-server connect timeout, and the session
timeout the server actually granted. Coordinator (coordinator.py) is its one user."""

from __future__ import annotations

from typing import Any

import structlog
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, ConnectionDropped, SessionClosedRequireSaslError
from kazoo.protocol import connection as kazoo_connection
from kazoo.protocol.serialization import Connect
from kazoo.retry import KazooRetry

from failoverd.config import Config, ZkTlsConfig
from failoverd.zk import acl as zk_acl
from failoverd.zk.connect import BoundedConnectHandler, connect_timeout
from failoverd.zk.errors import CoordinationError
from failoverd.zk.tls import client_context

log = structlog.get_logger(__name__)


def make_client(config: Config, credential: str | None = None) -> KazooClient:
    """A client for this cluster. `credential` ("user:password", an operator's)
    replaces the nodes' own zookeeper.auth (failoverctl --credential)."""
    zk = config.zookeeper
    # Bounded reconnect back-off: the default grows to an hour, and delayed
    # reconnection by ~2 s after a partition healed in our measurements. The cap is
    # T/10: during a ZooKeeper leader election every session is disconnected, and a
    # client sleeping 1 s between attempts let leases run out needlessly (benchmark:
    # 24 of 150 clusters re-took their own lease at T = 2 s).
    cap = max(0.1, min(1.0, zk.session_timeout / 10))
    retry = KazooRetry(max_tries=-1, delay=0.1, backoff=1.5, max_delay=cap)
    kwargs: dict[str, Any] = {}
    scheme = zk.auth.scheme if zk.auth is not None else "digest"
    if credential is not None:
        kwargs.update(auth_kwargs(scheme, credential))
    elif zk.auth is not None:
        kwargs.update(auth_kwargs(scheme, zk.auth.credential))
        kwargs["default_acl"] = zk_acl.default_acl(config)
    if zk.tls is not None:
        kwargs.update(tls_kwargs(zk.tls))
    # Each server's TCP connect gets T / servers, not the whole T (connect.py); TLS
    # is ours, not kazoo's: only the configured CA, the server's name checked (tls.py).
    handler = BoundedConnectHandler(
        connect_timeout(zk.session_timeout, zk.hosts),
        None if zk.tls is None else client_context(zk.tls),
    )
    client = KazooClient(
        hosts=zk.hosts,
        timeout=zk.session_timeout,
        connection_retry=retry,
        handler=handler,
        **kwargs,
    )
    _record_granted_timeout(client)
    if "sasl_options" in kwargs:
        _retry_sasl_refusals(client, kwargs["sasl_options"]["username"])
    return client


def auth_kwargs(scheme: str, credential: str) -> dict[str, Any]:
    """kazoo's arguments for "user:password" in this scheme. SASL DIGEST-MD5 runs
    before the session's first request (the server closes a session that sends
    anything first when it enforces sasl); it needs the pure-sasl package."""
    if scheme == "sasl":
        if not getattr(kazoo_connection, "PURESASL_AVAILABLE", True):
            # Else kazoo's connection thread would die on the first connect, silently.
            raise CoordinationError("zookeeper.auth.scheme sasl needs the pure-sasl package")
        user, _, password = credential.partition(":")
        options = {"mechanism": "DIGEST-MD5", "username": user, "password": password}
        return {"sasl_options": options}
    return {"auth_data": [("digest", credential)]}


def tls_kwargs(tls: ZkTlsConfig) -> dict[str, Any]:
    """kazoo's TLS arguments. The handshake itself is done with tls.client_context
    (make_client's handler), which ignores these but use_ssl; they say the same
    thing, check_hostname included, should kazoo ever connect by itself."""
    out: dict[str, Any] = {
        "use_ssl": True,
        "verify_certs": True,
        "check_hostname": True,
        "ca": tls.ca,
    }
    if tls.cert is not None:
        out.update(certfile=tls.cert, keyfile=tls.key)
    return out


def _retry_sasl_refusals(client: KazooClient, user: str) -> None:
    """Keep reconnecting when the server refuses our SASL login, and say so once.

    kazoo ends its connection thread for good on a refused SASL login, so the
    daemon would sit without a session, silently, even after the JAAS file is
    fixed. A refusal is turned into a dropped connection instead: kazoo retries
    with the bounded back-off, the node stays out of contention meanwhile (no
    session, no lease), and one critical line names the user."""
    conn = getattr(client, "_connection", None)
    original = getattr(conn, "_authenticate_with_sasl", None)
    if conn is None or original is None:
        log.warning("sasl_refusal_retry_unavailable", reason="kazoo internals changed")
        return
    said = [False]
    # Who was refused since the last login that worked (None: nobody): so that
    # failoverctl, whose connect times out meanwhile, can say "refused", not "unreachable".
    client.sasl_refused = None  # type: ignore[attr-defined]

    def authenticate(host: str, timeout: float) -> Any:
        try:
            result = original(host, timeout)
        except (AuthFailedError, SessionClosedRequireSaslError) as e:
            client.sasl_refused = user  # type: ignore[attr-defined]
            if not said[0]:
                said[0] = True
                log.critical(
                    "zookeeper_auth_refused",
                    user=user,
                    error=type(e).__name__,
                    hint="ZooKeeper refused this SASL login: check the user and password "
                    "against the servers' JAAS file (deploy/zookeeper/README.md); retrying",
                )
            raise ConnectionDropped(f"SASL login of {user} refused") from None
        said[0] = False
        client.sasl_refused = None  # type: ignore[attr-defined]
        return result

    conn._authenticate_with_sasl = authenticate


def _record_granted_timeout(client: KazooClient) -> None:
    """Remember the session timeout the server granted (kazoo only logs it).

    ZooKeeper clamps the requested timeout to the server's [min,max]SessionTimeout
    without error; a lease computed from a configured 30 s on a server that grants
    10 s would outlive the session. Wraps kazoo's connect-time request writer; if
    kazoo's internals differ, we keep the configured value and say so."""
    client.granted_timeout = None  # type: ignore[attr-defined]
    conn = getattr(client, "_connection", None)
    original = getattr(conn, "_invoke", None)
    if conn is None or original is None:
        log.warning("granted_session_timeout_unknown", reason="kazoo internals changed")
        return

    def invoke(timeout: float, request: Any, xid: Any = None) -> Any:
        result = original(timeout, request, xid)
        if isinstance(request, Connect):
            try:
                client.granted_timeout = result[0].time_out / 1000.0  # type: ignore[attr-defined]
            except (AttributeError, IndexError, TypeError):
                pass
        return result

    conn._invoke = invoke
