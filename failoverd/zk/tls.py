"""TLS to ZooKeeper that checks who the server is before a byte of ours is sent.

kazoo builds its own SSLContext for every connect (kazoo.handlers.utils
create_tcp_connection): it loads the system's trust store besides the configured
CA, and checks hostnames only when asked (we did not ask). So any certificate from
any public CA, for any name, or one from our CA for another name, was accepted, and
the server received the node's `user:password` in the auth packet: whoever can
redirect a ZooKeeper address (DNS, ARP, a routed port) could take the credential
and, with it, write the lock and the breadcrumb.

kazoo takes no SSLContext, so the handler (connect.py) connects with this one:
* only zookeeper.tls.ca is trusted: SSLContext(PROTOCOL_TLS_CLIENT) loads no default
  certificates (ssl.create_default_context would load the system's when no cafile
  is given; we never rely on that);
* the certificate must name the host as written in zookeeper.hosts (an IP address
  there must be in the certificate's IP SANs), check_hostname on;
* the client certificate and key when configured;
* TLS 1.2 at least.
"""

from __future__ import annotations

import socket
import ssl
import time

from failoverd.config import ZkTlsConfig


def client_context(tls: ZkTlsConfig) -> ssl.SSLContext:
    """The one context every connect to ZooKeeper uses."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=tls.ca)  # and nothing else: no load_default_certs
    if tls.cert is not None:
        ctx.load_cert_chain(certfile=tls.cert, keyfile=tls.key)
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    return ctx


def tls_connect(
    ctx: ssl.SSLContext, address: tuple[str, int], hostname: str, timeout: float
) -> ssl.SSLSocket:
    """A TCP connect to `address` and a TLS handshake checking `hostname` (the server
    as zookeeper.hosts names it), within `timeout` in all. A certificate that does
    not verify raises ssl.SSLCertVerificationError (an OSError, which kazoo treats
    as a failed server and tries the next) before anything is sent."""
    deadline = time.monotonic() + timeout
    sock = socket.create_connection(address, timeout)
    try:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as kazoo does
        return ctx.wrap_socket(sock, server_hostname=hostname)
    except BaseException:
        sock.close()
        raise
