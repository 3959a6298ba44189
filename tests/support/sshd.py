"""A private OpenSSH server on loopback: the target of ssh-fencing tests.

It runs `/usr/sbin/sshd -D -e -f CONFIG` with its own host key, authorized_keys,
pid file and log, listening on 127.0.0.1:<free port>. Tests run as root, so the
fence user is root; the authorized_keys line forces a command exactly as in
production (deploy/fencing/authorized_keys.example). sshd re-reads authorized_keys
at every login, so a test can swap the forced command between connections.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path, comment: str) -> str:
    """A fresh passphrase-less ed25519 key pair at path; returns the public key line."""
    path.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path.with_suffix(".pub").read_text().strip()


def wait_accepting(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{host}:{port} not accepting after {timeout}s") from None
            time.sleep(0.01)


class Sshd:
    host = "127.0.0.1"

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.authorized_keys = self.dir / "authorized_keys"
        self.config_path = self.dir / "sshd_config"
        self.log_path = self.dir / "sshd.log"
        self.user = getpass.getuser()
        self.proc: subprocess.Popen[bytes] | None = None
        keygen(self.host_key, "test-sshd-host")
        self.authorized_keys.write_text("")

    @property
    def host_key_line(self) -> str:
        """The host key as a known_hosts entry for this server: `[127.0.0.1]:PORT type key`."""
        kind, key = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[{self.host}]:{self.port} {kind} {key}"

    def authorize(self, pubkey: str, command: str) -> None:
        """Let `pubkey` in, always running `command` (the client's request arrives in
        SSH_ORIGINAL_COMMAND)."""
        quoted = command.replace("\\", "\\\\").replace('"', '\\"')
        self.authorized_keys.write_text(f'command="{quoted}",restrict {pubkey}\n')

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return  # running: a second sshd would fail on the port and leak this one
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
        self.config_path.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.host}",
                    f"Port {self.port}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin yes",
                    "PrintMotd no",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_accepting(self.host, self.port, 5.0)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"sshd did not start:\n{self.log()}") from None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no sshd log)"

    def write_known_hosts(self, path: Path, line: str | None = None) -> Path:
        path.write_text((line if line is not None else self.host_key_line) + "\n")
        os.chmod(path, 0o644)
        return path
