"""Everything failoverd says to ZooKeeper, and the pure formats of what it says.

coordinator.py is the one edge: the `Coordinator` class has a named method for
each thing the daemon, failoverctl, backup and restore read or write, and it
turns kazoo's exceptions into `CoordinationError`. Nothing outside this package
imports kazoo. Around it: the session's connect bound (connect.py), the ACLs
(acl.py), the checks run on every new session (session_checks.py), the lease
keeper thread (lease_keeper.py), and two pure modules any layer may use: the local
lease clock (lease.py) and the znode formats (znodes.py, formats.py).

This package may import config/ and observe/redact.py; fencing/marker.py for the
session checks. It imports nothing of node/, cli/ or resources/.
"""
