"""`failoverctl`, the operator's command (`python -m failoverd.cli` is the same).

failoverctl.py  the command group and the commands that steer the cluster
status.py       `status`: the cluster at a glance, and its verdict
table.py        status's layout: 100 columns, long cells cut, sentences wrapped (--wide: all)
local.py        `status --local`: one node's own view from its endpoint, without ZooKeeper
backup.py       `backup` and `restore` of the persistent znodes
common.py       what every command shares: config (a node's or an operator's), operator, ZooKeeper
exits.py        the exit codes, the one contract of every command, as exceptions
identity.py     who the operator is, for the audit trail
terminal.py     text from ZooKeeper made safe for a terminal
prompt.py       the question a command asks on a terminal before it changes who serves
when.py         the time of `switchover --at`

This package may import config/, zk/ (through its Coordinator only, never kazoo),
fencing/ (fence-check) and node/'s pure decisions; nothing in the daemon imports it.
"""
