"""What `failoverd --check` and the daemon's start-up look at on this machine,
beyond the config file's own words: ZooKeeper access and credentials, the state dir
and the owners and modes of everything root runs (preflight.py), the programs,
systemd units, interfaces and tools the config names (host.py), the OCF agents'
meta-data, and the report that `--check` prints (report.py).

These modules may import config/, resources/ (to ask an OCF agent for its
meta-data) and zk/'s pure pieces (ACL ids); nothing imports them but main.py.
"""
