"""A bound on kazoo's TCP connect to one ZooKeeper server: T / number of servers.

kazoo waits up to the whole session timeout T for the TCP connect to each
server it tries (its `create_connection(timeout=session_timeout)`), while the
handshake after it gets only T / servers, which is also what ZooKeeper's own
Java client allows the connect. One server cut off by packet drops (a partition,
a dead host) then costs a reconnecting client T per attempt, and kazoo shuffles
the list anew for every pass, so it may pick the dead one twice in a row.

Measured in the chaos lab (ZooKeeper minority, T = 2 s): the standby lost its
server when the old leader was cut off, tried the cut-off leader twice for 2 s
each while the majority had a new leader after 0.3 s, and came back only after
the new leader had expired its session: a new session, and the takeover 1.8 s
later than the old active's expiry allowed. With T / servers a pass over the
list costs at most about T, and the client is back on a live server within
about one pass of the new leader being ready.

Safety does not depend on this: the lease is the daemon's own clock; this only
decides how soon a client finds a live server.

With zookeeper.tls the handler also does the TLS handshake itself, with the context
tls.py builds (only our CA, the server's name checked): kazoo's own TLS connect
trusts the system's CAs and checks no name.
"""

from __future__ import annotations

import ssl
from typing import Any

from kazoo.handlers.threading import SequentialThreadingHandler

from failoverd.zk.tls import tls_connect


def connect_timeout(session_timeout: float, hosts: str) -> float:
    """T / number of servers in a kazoo host string ("a:2181,b:2181/chroot")."""
    servers = [h for h in hosts.split("/", 1)[0].split(",") if h.strip()]
    return session_timeout / max(1, len(servers))


class BoundedConnectHandler(SequentialThreadingHandler):
    """kazoo's default handler, with every TCP (and TLS) connect bounded, and TLS
    done with `tls` (tls.client_context) instead of kazoo's own context."""

    def __init__(self, connect_timeout: float, tls: ssl.SSLContext | None = None):
        super().__init__()
        self.connect_timeout = connect_timeout
        self.tls = tls

    def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        asked = kwargs.get("timeout")
        if asked is None or asked > self.connect_timeout:
            kwargs["timeout"] = self.connect_timeout
        if not kwargs.get("use_ssl"):
            return super().create_connection(*args, **kwargs)
        if self.tls is None:
            # Never fall back to kazoo's context: it trusts the system's CAs.
            raise ssl.SSLError("TLS to ZooKeeper asked for without failoverd's context")
        address = kwargs["address"] if "address" in kwargs else args[0]
        hostname = kwargs.get("hostname")
        if not isinstance(hostname, str) or not hostname:  # kazoo's command() passes a port
            hostname = address[0]
        return tls_connect(self.tls, address, hostname, kwargs["timeout"])
