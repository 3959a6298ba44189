"""Fencing: making sure the old active has stopped before this node takes over.

The chain (chain.py) tries each configured method in order: ssh (ssh.py, the peer
runs `failoverd fence-self`), a command such as a power switch (command.py) and
waiting out the peer's lease (lease_wait.py); base.py holds the types they share.
The target side is fence_self.py, which stops this node's resources and writes
the marker (marker.py) that proves it was fenced. probes.py and readiness.py check,
ahead of need, that each method would work toward each peer.

This package may import config/, process.py, resources/ (fence-self stops them),
zk/'s pure pieces (the lease clock, the member status lease-wait trusts) and
observe/. fence_self.py and marker.py run in the short `fence-self` process: they
import nothing heavy (no structlog, no paramiko; see observe/fastlog.py and
paramiko_import.py).
"""
