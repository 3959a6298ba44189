"""What `failoverd --check` and the daemon's start-up verify beyond the file's
syntax: the things an attacker or a careless operator changes on the machine.
Each finding names the key path, like config problems.

* ZooKeeper is closed by default: no `zookeeper.auth` is refused unless
  `zookeeper.insecure: true` says so explicitly.
* The state dir (fence marker, its lock) is absolute, outside /tmp and /var/tmp
  (systemd's PrivateTmp would give the daemon and an ssh-started fence-self two
  different directories: the marker fence-self writes would never be seen),
  root-owned, mode 0700, and writable: it is probed now, not at fence time. Every
  directory above it is root-owned and not writable by group or others (sticky or
  not): whoever can write one can swap the state dir.
* Every file that decides what root runs or trusts — the config file itself,
  known_hosts, the fence key, and every program and script root runs (programs.py
  lists them: resources, OCF agents, checks, fencers and their check_argv, hooks) —
  is owned by root and not writable by group or others, and so are the
  directories above it (a root-owned sticky directory such as /tmp excepted).

fence-self does not run these: stopping this node's services must work even on a
badly set-up node.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from failoverd.checks.programs import root_programs
from failoverd.config import Config, SshFencerConfig

PRIVATE_TMP = ("/tmp", "/var/tmp")  # noqa: S108 - the directories PrivateTmp= replaces
PROBE = ".failoverd-probe"
UNIT_STATE_DIR = "/var/lib/failoverd"  # StateDirectory= and ReadWritePaths= of the unit
SSHD_CONFIG = "/etc/ssh/sshd_config"


def zk_access_problems(config: Config) -> list[str]:
    zk = config.zookeeper
    if zk.auth is None and not zk.insecure:
        return [
            "zookeeper.auth: is required: without it anyone who reaches ZooKeeper can delete "
            "the lock or mark the breadcrumb clean (split brain); set it up "
            '(docs/install.md, "3. The nodes\' ZooKeeper credential") '
            "or set zookeeper.insecure: true to run open on purpose"
        ]
    return []


def zk_access_notes(config: Config) -> list[str]:
    if config.zookeeper.insecure:
        return ["zookeeper.insecure: the cluster's tree is open to anyone who reaches ZooKeeper"]
    if config.zookeeper.tls is None:
        return ["zookeeper.tls: not set: credentials and data cross the network in clear text"]
    return []


def state_dir_problems(path: str, create: bool = True) -> list[str]:
    """Problems with node.state_dir; creates it (mode 0700) if missing and its parent
    exists, then proves it writable by creating and removing a file."""
    at = "node.state_dir"
    if not os.path.isabs(path):
        return [f"{at}: {path} is not an absolute path"]
    real = os.path.realpath(path)
    for tmp in PRIVATE_TMP:
        if any(p == tmp or p.startswith(tmp + "/") for p in (os.path.normpath(path), real)):
            return [
                f"{at}: {path} is under {tmp}: systemd's PrivateTmp gives the daemon and "
                "fence-self different views of it, so a fence marker would go unseen; "
                "use /var/lib/failoverd"
            ]
    if problems := _state_dir_parent_problems(path, real):
        return problems
    if create and not os.path.lexists(path) and os.path.isdir(os.path.dirname(path)):
        try:
            os.mkdir(path, 0o700)
        except OSError as e:
            return [f"{at}: cannot create {path}: {e.strerror or e}"]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return [f"{at}: {path} does not exist: install -d -m 0700 -o root {path}"]
    except OSError as e:
        return [f"{at}: {path}: {e.strerror or e}"]
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return [f"{at}: {path} is not a directory (a symlink is not accepted)"]
    problems = []
    if st.st_uid != 0:
        problems.append(f"{at}: {path} is owned by uid {st.st_uid}, not root: chown root {path}")
    mode = stat.S_IMODE(st.st_mode)
    if mode != 0o700:
        problems.append(f"{at}: {path} has mode {mode:04o}: chmod 0700 {path}")
    if not problems:
        problems += _probe(path)
    return problems


def _state_dir_parent_problems(path: str, real: str) -> list[str]:
    """Whoever can write a directory above the state dir can rename the state dir
    away and put their own in its place (their fence marker, or none), so each one,
    on the path as written and on the path it resolves to, must be root-owned and
    not writable by group or others. A sticky bit is no excuse here: unlike the
    programs' directories, nothing else has a reason to live beside a state dir."""
    seen: set[Path] = set()
    for d in (*Path(os.path.normpath(path)).parents, *Path(real).parents):
        if d in seen:
            continue
        seen.add(d)
        try:
            st = os.stat(d)
        except OSError:
            continue  # missing: reported below as a state dir that cannot be created
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid != 0:
            return [
                f"node.state_dir: {path}: directory {d} is owned by uid {st.st_uid}, not root: "
                f"whoever owns it can replace the state dir; chown root {d}"
            ]
        if mode & 0o022:
            return [
                f"node.state_dir: {path}: directory {d} has mode {mode:04o}, writable by "
                f"group/others: whoever can write it can replace the state dir; chmod go-w {d}"
            ]
    return []


def _probe(path: str) -> list[str]:
    probe = os.path.join(path, PROBE)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, b"probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except FileExistsError:
        try:  # left by a crash between create and unlink: not a problem
            os.unlink(probe)
        except OSError as e:
            return [f"node.state_dir: cannot write in {path}: {e.strerror or e}"]
    except OSError as e:
        return [f"node.state_dir: cannot write in {path}: {e.strerror or e}"]
    return []


def owner_problems(at: str, path: str, what: str) -> list[str]:
    """`path` (followed through symlinks) and the directories above it must be
    root-owned and not writable by group or others: whoever can change any of
    them decides what root runs or trusts."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return []  # a missing file is reported where it matters (or noted)
    problems = []
    if st.st_uid != 0:
        problems.append(f"{at}: {what} {path} is owned by uid {st.st_uid}, not root")
    if stat.S_IMODE(st.st_mode) & 0o022:
        mode = stat.S_IMODE(st.st_mode)
        problems.append(f"{at}: {what} {path} is writable by group/others (mode {mode:04o})")
    parent = Path(real).parent
    for d in (parent, *parent.parents):
        try:
            dst = os.stat(d)
        except OSError:
            break
        sticky_root = dst.st_mode & stat.S_ISVTX and dst.st_uid == 0
        if dst.st_uid != 0 or (stat.S_IMODE(dst.st_mode) & 0o022 and not sticky_root):
            problems.append(
                f"{at}: {what} {path}: directory {d} is not root-owned or is writable by "
                "group/others, so the file can be replaced"
            )
            break
    return problems


def file_problems(config: Config) -> list[str]:
    out = owner_problems("config", config.path, "config file")
    zk = config.zookeeper
    if zk.auth is not None:
        out += owner_problems("zookeeper.auth.credential_file", zk.auth.credential_file, "file")
    if zk.tls is not None:  # the CA decides which servers are ZooKeeper
        for key in ("ca", "cert", "key"):
            if path := getattr(zk.tls, key):
                out += owner_problems(f"zookeeper.tls.{key}", path, "file")
    for i, f in enumerate(config.fencing):
        if isinstance(f, SshFencerConfig):
            out += owner_problems(f"fencing[{i}].known_hosts", f.known_hosts, "file")
            out += owner_problems(f"fencing[{i}].key_file", f.key_file, "file")
    for at, path, what in root_programs(config):
        out += owner_problems(at, path, what)
    return out


def metrics_notes(config: Config) -> list[str]:
    m = config.metrics
    if m is None:
        return []
    try:
        loopback = ipaddress.ip_address(m.host).is_loopback
    except ValueError:
        loopback = m.host == "localhost"
    if loopback:
        return []
    return [
        f"metrics.listen: {m.host}:{m.port} is not loopback: /status and /metrics show "
        "roles, epochs and health to whoever reaches that address; firewall it"
    ]


def unit_notes(config: Config) -> list[str]:
    """deploy/failoverd.service lets the daemon write only UNIT_STATE_DIR
    (ProtectSystem=strict); another state dir needs a ReadWritePaths= drop-in."""
    path = os.path.normpath(config.node.state_dir)
    if path == UNIT_STATE_DIR:
        return []
    return [
        f"node.state_dir: {path} is not {UNIT_STATE_DIR}, the only directory the shipped "
        "systemd unit lets failoverd write: add a drop-in (systemctl edit failoverd) with "
        f"[Service] ReadWritePaths={path}"
    ]


def authorized_keys_notes(config: Config, sshd_config: str = SSHD_CONFIG) -> list[str]:
    """This node is its peers' fencing target: their ssh fencer logs in here as
    `fencing[].user`, and the forced command in that user's authorized_keys is
    what runs. Whoever can write that file (or a directory above it) can swap
    fence-self for `true`, and a "successful" fence then stops nothing. So every
    AuthorizedKeysFile sshd uses for the fence user must be root-owned.

    Asked of sshd itself (`sshd -T -C user=...`: the effective config, Match
    blocks included). A note, not an error: sshd's config may legitimately be
    managed elsewhere, and this node's own fencing does not depend on it."""
    users = sorted({f.user for f in config.fencing if isinstance(f, SshFencerConfig)})
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if not users or sshd is None or not os.path.exists(sshd_config):
        return []
    notes = []
    for user in users:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            notes.append(
                f"fencing: the fence user {user!r} does not exist on this node, so peers "
                "cannot fence it over ssh"
            )
            continue
        try:
            out = subprocess.run(
                [sshd, "-T", "-f", sshd_config, "-C", f"user={user},host=localhost,addr=127.0.0.1"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            notes.append(f"fencing: cannot ask sshd for its effective config: {e}")
            continue
        if out.returncode != 0:
            why = (out.stderr.strip().splitlines() or ["no reason given"])[-1]
            notes.append(f"fencing: cannot ask sshd for its effective config: {why}")
            continue
        for line in out.stdout.splitlines():
            key, _, value = line.partition(" ")
            if key != "authorizedkeysfile":
                continue
            for pattern in value.split():
                path = _expand_sshd_tokens(pattern, user, pw.pw_dir, pw.pw_uid)
                notes += owner_problems(
                    f"fencing (sshd AuthorizedKeysFile for {user})", path, "authorized_keys"
                )
    return notes


def _expand_sshd_tokens(pattern: str, user: str, home: str, uid: int) -> str:
    """sshd_config(5) TOKENS for AuthorizedKeysFile; relative paths are under home."""
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "%" and i + 1 < len(pattern):
            token = pattern[i + 1]
            out.append({"%": "%", "h": home, "u": user, "U": str(uid)}.get(token, "%" + token))
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    path = "".join(out)
    return path if os.path.isabs(path) else os.path.join(home, path)


def preflight(config: Config) -> tuple[list[str], list[str]]:
    """(problems, notes); problems are formatted like config problems."""
    problems = [
        *zk_access_problems(config),
        *state_dir_problems(config.node.state_dir),
        *file_problems(config),
    ]
    notes = [*zk_access_notes(config), *metrics_notes(config), *unit_notes(config)]
    return [f"{config.path}: {p}" for p in problems], notes
