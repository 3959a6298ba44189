"""TLS to ZooKeeper checks who the server is before anything is sent: the server's
certificate must come from the configured CA (zookeeper.tls.ca, nothing else: not
the system's trust store) and name the host as written in zookeeper.hosts.

Against a fake ZooKeeper on loopback: a TLS server that completes the connect
handshake (so the client goes on to send its auth packet) and records every byte
that arrives after the TLS handshake. Before, kazoo checked no hostname and loaded
the system trust store next to the configured CA: a server with a certificate for
another name received the node's `user:password`."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kazoo.handlers.threading import KazooTimeoutError

from failoverd.config import load_config
from failoverd.zk.client import make_client
from tests.support.access import state_dir_for
from tests.support.certs import CA

CREDENTIAL = "failoverd:s3cret-on-the-wire"


@dataclass
class FakeZooKeeper:
    """Accepts TLS connections with one certificate; answers a ZooKeeper connect
    request with a session, then records what the client sends."""

    cert: str
    key: str
    sock: socket.socket = field(default_factory=socket.socket)
    handshakes: list[bool] = field(default_factory=list)
    received: bytes = b""

    def __post_init__(self) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.cert, self.key)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(3)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            self.handshakes.append(False)
            conn.close()
            return
        self.handshakes.append(True)
        with tls:
            try:
                self._talk(tls)
            except OSError:
                pass

    def _talk(self, tls: ssl.SSLSocket) -> None:
        got = b""
        while len(got) < 4 or len(got) < 4 + struct.unpack(">i", got[:4])[0]:
            chunk = tls.recv(65536)
            if not chunk:
                break
            got += chunk
        self.received += got
        if len(got) < 4:
            return
        # ConnectResponse: protocol version, timeout (ms), session id, password.
        body = struct.pack(">iiqi", 0, 4000, 0x1234, 16) + b"\0" * 16 + b"\0"
        tls.sendall(struct.pack(">i", len(body)) + body)
        tls.settimeout(1.0)
        while True:
            try:
                chunk = tls.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.received += chunk

    def close(self) -> None:
        self.sock.close()


@dataclass
class Certs:
    ca: str  # the configured CA
    right: tuple[str, str]  # from the CA, for 127.0.0.1 and localhost
    wrong_name: tuple[str, str]  # from the CA, for zk9.example.org
    other_ca: str  # an unrelated CA
    other_right_name: tuple[str, str]  # from the unrelated CA, for 127.0.0.1 and localhost
    other_wrong_name: tuple[str, str]  # from the unrelated CA, for zk9.example.org


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    ca, other = CA.make("failoverd test CA"), CA.make("someone else's CA")
    here = ["127.0.0.1", "localhost"]
    return Certs(
        ca=ca.write(d / "ca.pem"),
        right=ca.issue(here, d / "right.pem", d / "right.key"),
        wrong_name=ca.issue(["zk9.example.org"], d / "wrong.pem", d / "wrong.key"),
        other_ca=other.write(d / "other-ca.pem"),
        other_right_name=other.issue(here, d / "o-right.pem", d / "o-right.key"),
        other_wrong_name=other.issue(["zk9.example.org"], d / "o-wrong.pem", d / "o-wrong.key"),
    )


@pytest.fixture(autouse=True)
def system_trusts_the_other_ca(certs: Certs, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Stands for a public CA in the system's trust store: OpenSSL's default verify
    paths read SSL_CERT_FILE, so whatever loads the defaults trusts the other CA."""
    monkeypatch.setenv("SSL_CERT_FILE", certs.other_ca)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    yield


def connect(tmp_path: Path, certs: Certs, server: FakeZooKeeper, host: str) -> None:
    """A node's ZooKeeper client, from YAML, tried against `server` once."""
    secret = tmp_path / "zk.secret"
    secret.write_text(CREDENTIAL + "\n")
    secret.chmod(0o600)
    cfg = tmp_path / "failoverd.yaml"
    cfg.write_text(
        f"""\
cluster: mail-east
node:
  name: mail1
  address: 10.0.0.11
  state_dir: {state_dir_for(tmp_path, "mail1")}
peers:
  mail2: {{address: 10.0.0.12}}
zookeeper:
  hosts: "{host}:{server.port}"
  session_timeout: 2
  auth: {{scheme: digest, credential_file: {secret}}}
  tls:
    ca: {certs.ca}
fencing:
  - {{type: command, argv: [/bin/true, "{{node}}"]}}
"""
    )
    client = make_client(load_config(str(cfg)))
    try:
        client.start(timeout=1.5)
    except KazooTimeoutError:
        pass  # the fake server never answers the auth packet, or TLS was refused
    finally:
        client.stop()
        client.close()


def serve(pair: tuple[str, str]) -> Iterator[FakeZooKeeper]:
    server = FakeZooKeeper(*pair)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_right_server_gets_the_connect_and_the_auth(
    tmp_path: Path, certs: Certs, host: str
) -> None:
    for server in serve(certs.right):
        connect(tmp_path, certs, server, host)
        assert True in server.handshakes, server.handshakes
        assert CREDENTIAL.encode() in server.received, server.received[:200]


@pytest.mark.parametrize(
    "which",
    [
        "wrong_name",  # the configured CA, a certificate for another name
        "other_right_name",  # a CA only the system trusts, the right name
        "other_wrong_name",  # the audit's case: both wrong
    ],
)
def test_a_server_that_is_not_the_configured_one_gets_nothing(
    tmp_path: Path, certs: Certs, which: str
) -> None:
    for server in serve(getattr(certs, which)):
        connect(tmp_path, certs, server, "127.0.0.1")
        assert server.handshakes, "the client never tried"
        assert CREDENTIAL.encode() not in server.received, "the credential reached it"
        assert server.received == b"", f"bytes after the handshake: {server.received[:80]!r}"
        assert True not in server.handshakes, server.handshakes
