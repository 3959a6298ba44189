"""ZooKeeper: the only package that knows kazoo. Everything else sees Coordinator's
methods and CoordinationError.

coordinator.py     the daemon's znodes: lock (lease), breadcrumb, members, control, history
admin.py           what only failoverctl asks: backup reads, restore writes, fix-acl
errors.py          CoordinationError and the kinds a caller acts on
client.py          the kazoo client: auth, TLS, reconnect back-off, granted session timeout
connect.py         the per-server connect timeout, and TLS connects with tls.py's context
tls.py             the TLS context: only the configured CA, the server's name checked
lease.py           the local lease (boot-time clock) that ZooKeeper's answers renew
lease_keeper.py    the thread that renews it, pipelined
acl.py             the ACLs a cluster's tree and the root above it must have
requests.py        the operators' request znodes: who made a change in control
znodes.py          what each znode holds, and its JSON
formats.py         which znode format the members can all read
session_checks.py  what the daemon checks on each new session: parents, ACLs, its marker

lease.py, znodes.py and formats.py are pure and any layer may import them. The rest
may import config/, observe/ (redaction) and fencing/marker.py (the session check);
nothing of node/, cli/ or resources/.
"""
