"""The kazoo client of one cluster: its auth (the nodes' own or an operator's), TLS,
a bounded reconnect back-off and per-server connect timeout, and the session
timeout the server actually granted. Coordinator (coordinator.py) is its one user."""

from __future__ import annotations

from typing import Any

import structlog
from kazoo.client import KazooClient
from kazoo.protocol.serialization import Connect
from kazoo.retry import KazooRetry

from failoverd.config import Config, ZkTlsConfig
from failoverd.zk import acl as zk_acl
from failoverd.zk.connect import BoundedConnectHandler, connect_timeout
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
    if credential is not None:
        kwargs["auth_data"] = [("digest", credential)]
    elif zk.auth is not None:
        kwargs["auth_data"] = [("digest", zk.auth.credential)]
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
    return client


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
