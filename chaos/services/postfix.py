"""The lab's real mail node (`--mail postfix`): Debian's Postfix and Dovecot as resources.

    python -m chaos.services.postfix start|stop|kill|status postfix|dovecot --lab RUN --node mail1

Per node, in the run folder: `<node>/postfix/{main.cf,master.cf}` (one Postfix
instance, `postfix -c DIR`), `<node>/dovecot/dovecot.conf` (`dovecot -c FILE`,
its own base_dir). Both listen on the VIP only (SMTP 25, IMAP 143). The store
(chaos/lab/store_image.py) is mounted by failoverd's first resource,
ocf:heartbeat:Filesystem (the node's failoverd.yaml: chaos/lab/postfix_node.py), on
`/run/failoverd-chaos/mail/<prefix>/store`, and holds Postfix's queue_directory and
data_directory and the Maildirs. With `local_queue` (the negative control) the
queue stays on node-local disk instead.

These commands run inside the node's machine (its network and mount namespaces,
chaos/lab/nodes.py), so they see the store mounted exactly when the node has it.

What the checker relies on: `service_up` is written before Postfix starts (so
before port 25 opens), `service_down` after no Postfix process of this node is
left, as the toy service does; `postfix_master` records the master's pid. `kill`
(failoverd's fast path, taken when the stop is a fence) writes the same
`service_down`, once no process is left, as `stop` does.

Postfix is started as `master -w`, not `postfix start`: the script behind
`postfix start` spends some 250 ms (of ~290 ms to the banner, measured on the
lab's machine) on checks a failover does not need (`postfix check`'s queue
set-up and permission warnings, postsuper's queue repair), done here once, at the
first start on a fresh queue (queue_ready). Why each is safe to leave out, and
what a real node should do instead: deploy/examples/postfix-dovecot/README.md.
main.cf is written only when it changes (_write_main_cf says why).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from chaos.layout import PREFIXLEN, SUBNET, VIP, mount_dir, short_dir
from chaos.records import append_event, read_records

USERS = ("postmaster",)  # the client's recipient: postmaster@lab
PASSWORD = "lab-secret"
VMAIL_UID = 5000  # the Maildirs' owner; no passwd entry is needed
POSTFIX_BIN = "/usr/lib/postfix/sbin/"
# What Postfix's own set-up (`post-install create-missing`) makes: every
# `$queue_directory/NAME:d:...` line of this file is a queue directory.
POSTFIX_FILES = Path("/etc/postfix/postfix-files")
DOVECOT_BIN = ("/usr/sbin/dovecot", "/usr/lib/dovecot/")


class NodePaths:
    def __init__(self, lab: Path, node: str):
        self.lab, self.node = lab, node
        short = short_dir(lab)  # UNIX sockets live below here (sun_path is 108 bytes)
        self.store = mount_dir(lab)
        self.local = short / node  # node-local disk
        self.postfix = lab / node / "postfix"
        self.dovecot = lab / node / "dovecot"
        self.events = lab / "events" / f"{node}-service.jsonl"  # service_up/down only
        self.processes = lab / "events" / f"{node}-mail.jsonl"  # master pids
        self.local_queue_flag = lab / "flags" / "local-queue"  # negative control
        self.backlog_flag = lab / "flags" / "mail-backlog"  # negative control

    @property
    def local_queue(self) -> bool:
        return self.local_queue_flag.exists()

    @property
    def queue(self) -> Path:
        return (self.local / "local-queue") if self.local_queue else self.store / "postfix"

    @property
    def data(self) -> Path:
        base = self.local if self.local_queue else self.store
        return base / "postfix-data"

    @property
    def mail(self) -> Path:
        return self.store / "mail"

    def event(self, event: str, **fields: object) -> None:
        append_event(self.events, {"event": event, "node": self.node, "t": time.time(), **fields})

    def process_event(self, event: str, **fields: object) -> None:
        rec = {"event": event, "node": self.node, "t": time.time(), **fields}
        append_event(self.processes, rec)


# -- configuration files -----------------------------------------------------------------


def main_cf(p: NodePaths) -> str:
    boxes = ", ".join(f"{{{u}@lab = {u}/}}" for u in USERS)
    return (
        f"""# Written by chaos/services/postfix.py for {p.node}. The settings that matter for
# failover are explained in deploy/examples/postfix-dovecot/README.md.
compatibility_level = 3.6
config_directory = {p.postfix}
queue_directory = {p.queue}
data_directory = {p.data}
myhostname = {p.node}.lab
mydomain = lab
myorigin = lab
mydestination =
inet_interfaces = {VIP}
inet_protocols = ipv4
mynetworks = {SUBNET}.0/{PREFIXLEN} 127.0.0.0/8
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
virtual_mailbox_domains = lab
virtual_mailbox_base = {p.mail}
virtual_mailbox_maps = inline:{{ {boxes} }}
virtual_uid_maps = static:{VMAIL_UID}
virtual_gid_maps = static:{VMAIL_UID}
maillog_file = {p.lab / p.node / "postfix.log"}
maillog_file_prefixes = {p.lab}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtpd_client_connection_count_limit = 0
default_process_limit = 60
"""
        + (
            # A backlog (negative control): one delivery per second, so acknowledged
            # mail waits in the queue as it would during a flood.
            "virtual_destination_rate_delay = 1s\n" if p.backlog_flag.exists() else ""
        )
    )


def master_cf() -> str:
    """Debian's master.cf without chroot (the lab's paths are not inside a chroot)."""
    lines = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        f = line.split()
        if line[:1] not in ("", "#", " ", "\t") and len(f) >= 8 and f[4] == "y":
            f[4] = "n"
            line = "  ".join(f)
        lines.append(line)
    return "\n".join(lines) + "\n"


def dovecot_conf(p: NodePaths) -> str:
    return f"""# Written by chaos/services/postfix.py for {p.node}.
base_dir = {p.local / "dovecot-run"}
state_dir = {p.local / "dovecot-state"}
log_path = {p.lab / p.node / "dovecot.log"}
listen = {VIP}
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = {VMAIL_UID}
mail_location = maildir:~
# Shared storage that moves between nodes: no mmap, fcntl locks, fsync always.
mmap_disable = yes
mail_fsync = always
lock_method = fcntl
mail_nfs_index = no
passdb {{
  driver = passwd-file
  args = {p.lab / "dovecot-users"}
}}
userdb {{
  driver = passwd-file
  args = {p.lab / "dovecot-users"}
}}
"""


def prepare_cluster(run_dir: Path, mail: str = "postfix") -> None:
    """Files both nodes share; `mail` may name a negative control's planted mistake."""
    if mail == "postfix-local-queue":
        (run_dir / "flags" / "local-queue").touch()
        (run_dir / "flags" / "mail-backlog").touch()
    users = "".join(
        f"{u}:{{PLAIN}}{PASSWORD}:{VMAIL_UID}:{VMAIL_UID}::{mount_dir(run_dir) / 'mail' / u}\n"
        for u in USERS
    )
    (run_dir / "dovecot-users").write_text(users)


def prepare_node(run_dir: Path, node: str) -> None:
    p = NodePaths(run_dir, node)
    p.postfix.mkdir(parents=True, exist_ok=True)
    p.dovecot.mkdir(parents=True, exist_ok=True)
    (p.local / "dovecot-run").mkdir(parents=True, exist_ok=True)
    (p.local / "dovecot-state").mkdir(parents=True, exist_ok=True)
    (p.postfix / "main.cf").write_text(main_cf(p))
    (p.postfix / "master.cf").write_text(master_cf())
    (p.dovecot / "dovecot.conf").write_text(dovecot_conf(p))


# -- processes of this node ------------------------------------------------------------


def _own_net() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def node_processes(prefixes: tuple[str, ...]) -> list[int]:
    """Pids in this network namespace whose executable starts with one of `prefixes`."""
    own, me = _own_net(), os.getpid()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            if os.stat(d / "ns/net").st_ino != own:
                continue
            exe = os.readlink(d / "exe")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X") and exe.startswith(prefixes):
            out.append(int(d.name))
    return out


def _postfix_master() -> int | None:
    return next(iter(node_processes((POSTFIX_BIN + "master",))), None)


def _dovecot_master() -> int | None:
    return next(iter(node_processes(("/usr/sbin/dovecot",))), None)


def _wait_none(prefixes: tuple[str, ...], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while node_processes(prefixes):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _kill_all(prefixes: tuple[str, ...]) -> None:
    for pid in node_processes(prefixes):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _listening(port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((VIP, port), timeout=timeout):
            return True
    except OSError:
        return False


def _epoch() -> int | None:
    raw = os.environ.get("FAILOVERD_EPOCH", "")
    return int(raw) if raw.isdigit() else None


# -- resource commands -------------------------------------------------------------------


def start_postfix(p: NodePaths, timeout: float) -> int:
    if not os.path.ismount(p.store):
        print(f"mail store {p.store} is not mounted here", file=sys.stderr)
        return 1
    if _postfix_master() is not None:
        stop_postfix(p, timeout)  # a restart: the new instance carries the new epoch
    _write_main_cf(p)  # flags of the controls are read now
    postfix_uid = pwd.getpwnam("postfix").pw_uid
    for d in (p.queue, p.data):
        d.mkdir(parents=True, exist_ok=True)
    os.chown(p.data, postfix_uid, -1)
    p.mail.mkdir(parents=True, exist_ok=True)
    os.chown(p.mail, VMAIL_UID, VMAIL_UID)
    # Up before the port can open: the recorded interval covers every moment we serve.
    p.event("service_up", epoch=_epoch(), by="postfix", queue=str(p.queue))
    if not queue_ready(p.queue) and not _postfix_check(p, timeout):
        stop_postfix(p, 5.0)  # (nothing runs yet: closes the interval just opened)
        return 1
    # The master alone: `-w` returns once it initialised (its sockets listen), with
    # status 0 only if that worked. It refuses to run twice itself (a lock on
    # pid/master.pid), the check `postfix start` makes with `master -t`. The umask
    # is the one postfix-script sets.
    master = [POSTFIX_BIN + "master", "-c", str(p.postfix), "-w"]
    if _start_listening(p, "postfix", master, 25, timeout, umask=0o022):
        p.process_event("postfix_master", pid=_postfix_master(), epoch=_epoch())
        return 0
    # The master tells why only to its log; the checks of `postfix` itself catch
    # what it most likely was (a bad main.cf, the VIP not there).
    _postfix_check(p, timeout)
    stop_postfix(p, 5.0)
    return 1


def _write_main_cf(p: NodePaths) -> None:
    """main.cf as the controls' flags say now, written only if that changes it.

    Every Postfix program refuses to read a main.cf changed less than a second or
    two ago (it waits, 300 ms at a time, for the file to "cool down", in case an
    editor is still writing it): rewritten at every start, it cost each start 1 to
    2.4 s (measured). Written at prepare time, it is cool long before a failover;
    only a control that changes a flag during the run pays that wait, once."""
    path = p.postfix / "main.cf"
    text = main_cf(p)
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text:
            return
    path.write_text(text)


def queue_dirs() -> list[str]:
    """The queue's directories, as the installed Postfix lists them."""
    names = []
    for line in POSTFIX_FILES.read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.startswith("$queue_directory/") and rest.startswith("d:"):
            names.append(name.removeprefix("$queue_directory/"))
    return names


def queue_ready(queue: Path) -> bool:
    """Has this queue been set up (by an earlier start, on any node)? A fresh
    store, or the node-local queue of the `local-queue` control, has not."""
    return all((queue / name).is_dir() for name in queue_dirs())


def _postfix_check(p: NodePaths, timeout: float) -> bool:
    """`postfix check`: creates the queue's missing directories with their owners
    and modes (post-install create-missing), repairs the queue (postsuper) and
    warns about ownership. What `postfix start` runs on every start, run here when
    the queue is new. Postfix prints its fatal errors only to a terminal (else to
    syslog, which the lab does not run): `script` gives it one, so postfix.out
    says why it failed."""
    check = ["script", "-qec", f"postfix -c {p.postfix} check", "/dev/null"]
    with open(p.lab / p.node / "postfix.out", "ab") as out:
        run = subprocess.run(
            check, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout
        )
    if run.returncode != 0:
        print(f"postfix check exited {run.returncode}; see {p.node}/postfix.out", file=sys.stderr)
    return run.returncode == 0


def _start_listening(
    p: NodePaths, name: str, argv: list[str], port: int, timeout: float, umask: int = -1
) -> bool:
    """Run a daemon's start command, then wait until something listens on `port`.
    Output goes to `<node>/<name>.out`, a file, not a pipe: the daemon the command
    leaves behind would hold a pipe open."""
    with open(p.lab / p.node / f"{name}.out", "ab") as out:
        run = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout, umask=umask
        )
    deadline = time.monotonic() + timeout
    while run.returncode == 0 and time.monotonic() < deadline:
        if _listening(port):
            return True
        # Both commands return once their daemon listens: this loop rarely turns,
        # and when it does, every 10 ms of its sleep is 10 ms of failover.
        time.sleep(0.01)
    print(f"{name} start exited {run.returncode}; see {p.node}/{name}.out", file=sys.stderr)
    return False


def _interval_open(p: NodePaths) -> bool:
    """Did this node's last service record say `service_up`?"""
    last = [r["event"] for r in read_records(p.events) if r.get("node") == p.node]
    return bool(last) and last[-1] == "service_up"


def stop_postfix(p: NodePaths, timeout: float) -> int:
    if not node_processes((POSTFIX_BIN,)):
        if _interval_open(p):  # a start that failed, or a Postfix that died by itself
            p.event("service_down", by="postfix-not-running", epoch=_epoch())
        return 0
    # What `postfix stop` does, without its wait: it sends the master SIGTERM (the
    # master passes it on to its children and exits: the graceful stop), then looks
    # for the master again in steps of a second, which cost a switchover up to 1.2 s
    # (measured). The master is found by its process, not its pid file.
    master = _postfix_master()
    if master is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGTERM)
    if not _wait_none((POSTFIX_BIN,), timeout):
        _kill_all((POSTFIX_BIN,))
        if not _wait_none((POSTFIX_BIN,), 2.0):
            print("postfix processes survived SIGKILL", file=sys.stderr)
            return 1
    p.event("service_down", by="postfix", epoch=_epoch())
    return 0


def _kill_until_none(master: int | None, prefixes: tuple[str, ...], timeout: float) -> bool:
    """SIGKILL the master first, so that it forks no new children, then every
    process of `prefixes` on this node until none is left (False: some outlived
    `timeout`). A child forked before the master died still runs the master's
    binary until it execs, so the prefixes find it."""
    if master is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while node_processes(prefixes):
        if time.monotonic() > deadline:
            return False
        _kill_all(prefixes)
        time.sleep(0.01)
    return True


def kill_postfix(p: NodePaths, timeout: float) -> int:
    """The fast path of a fence: SIGKILL, no `postfix stop` (which waits for the master
    in steps of a second). `postfix abort` would not do: it only sends the master
    SIGTERM and does not wait. Nothing acknowledged is lost: Postfix answers 250 only
    once the message is fsynced in the queue on the store, and the next start puts
    the active queue back into incoming. The stale master.pid left on the store is
    harmless: Postfix judges it by its lock, which died with the master."""
    if not node_processes((POSTFIX_BIN,)):
        if _interval_open(p):  # as stop: a start that failed, or a Postfix that died
            p.event("service_down", by="postfix-not-running", epoch=_epoch())
        return 0
    if not _kill_until_none(_postfix_master(), (POSTFIX_BIN,), timeout):
        print("postfix processes survived SIGKILL", file=sys.stderr)
        return 1
    p.event("service_down", by="postfix-kill", epoch=_epoch())
    return 0


def start_dovecot(p: NodePaths, timeout: float) -> int:
    if _dovecot_master() is not None:
        stop_dovecot(p, timeout)
    if _start_listening(
        p, "dovecot", ["dovecot", "-c", str(p.dovecot / "dovecot.conf")], 143, timeout
    ):
        p.process_event("dovecot_master", pid=_dovecot_master(), epoch=_epoch())
        return 0
    stop_dovecot(p, 5.0)
    return 1


# The Dovecot processes that read and write mail on the store. The rest (the master,
# log, config, anvil, auth, stats and the login processes) hold none of it.
DOVECOT_MAIL = frozenset(
    f"/usr/lib/dovecot/{name}" for name in ("imap", "pop3", "lmtp", "indexer-worker", "dovecot-lda")
)


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _mail_workers() -> list[int]:
    return [pid for pid in node_processes(DOVECOT_BIN) if _exe(pid) in DOVECOT_MAIL]


def stop_dovecot(p: NodePaths, timeout: float) -> int:
    """SIGTERM to the master, then graceful where it matters: the processes that
    read and write mail finish and exit. What is left after them is bookkeeping
    that holds nothing of the store; measured on this machine, the master keeps
    its listeners open for about 1.1 s after SIGTERM while it waits for its log
    process, whether or not anybody is connected, so waiting for it costs a
    switchover a second for nothing. Those are killed, and the pid file goes as
    after kill_dovecot."""
    master = _dovecot_master()
    if master is None and not node_processes(DOVECOT_BIN):
        return 0
    if master is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _mail_workers() and time.monotonic() < deadline:
        time.sleep(0.01)
    _kill_all(DOVECOT_BIN)  # the mail workers too, if they outlived the timeout
    if not _wait_none(DOVECOT_BIN, 2.0):
        print("dovecot processes survived SIGKILL", file=sys.stderr)
        return 1
    with contextlib.suppress(FileNotFoundError):
        (p.local / "dovecot-run" / "master.pid").unlink()
    return 0


def kill_dovecot(p: NodePaths, timeout: float) -> int:
    """The fast path of a fence: SIGKILL the master and its children. Its pid file
    goes too, as a graceful stop removes it: Dovecot refuses to start while the pid
    in it belongs to a live process, and after a kill that pid may be reused."""
    master = _dovecot_master()
    if master is not None or node_processes(DOVECOT_BIN):
        if not _kill_until_none(master, DOVECOT_BIN, timeout):
            print("dovecot processes survived SIGKILL", file=sys.stderr)
            return 1
    with contextlib.suppress(FileNotFoundError):
        (p.local / "dovecot-run" / "master.pid").unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chaos.services.postfix")
    ap.add_argument("action", choices=["start", "stop", "kill", "status"])
    ap.add_argument("service", nargs="?", choices=["postfix", "dovecot"])
    ap.add_argument("--lab", required=True, type=Path, help="the run folder")
    ap.add_argument("--node", default=os.environ.get("FAILOVERD_NODE"))
    ap.add_argument("--timeout", type=float, default=8.0)
    args = ap.parse_args(argv)
    if not args.node:
        ap.error("--node or FAILOVERD_NODE is required")
    p = NodePaths(args.lab.resolve(), args.node)
    if args.service is None:
        ap.error(f"{args.action} needs postfix or dovecot")
    if args.action == "status":
        running = _postfix_master() if args.service == "postfix" else _dovecot_master()
        return 0 if running is not None else 3
    fn = {
        ("start", "postfix"): start_postfix,
        ("stop", "postfix"): stop_postfix,
        ("kill", "postfix"): kill_postfix,
        ("start", "dovecot"): start_dovecot,
        ("stop", "dovecot"): stop_dovecot,
        ("kill", "dovecot"): kill_dovecot,
    }[(args.action, args.service)]
    return fn(p, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
