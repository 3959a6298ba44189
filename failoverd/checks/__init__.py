"""This machine against a parsed config: what `failoverd --check` reports and what
the daemon checks before it starts (config/ only parses).

report.py     what --check prints, and its exit code
ocf.py        OCF agents installed, and their params against the agents' meta-data
preflight.py  ZooKeeper access, the state dir, owners and modes of what root runs
programs.py   every program and script the config makes root run, for preflight.py
host.py       programs, units, interfaces and tools the config would use
units.py      whether a systemd unit runs its daemon or only stands for it

These modules may import config/, resources/ (to ask an OCF agent for its meta-data)
and zk/'s pure pieces (ACL ids); only main.py imports them.
"""
