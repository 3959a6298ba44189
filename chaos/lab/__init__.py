"""The lab itself: network namespaces and what they hold, built fresh for every repetition.

Here live the namespace primitives (netns.py) and cgroups (cgroups.py), the
network with its bridge, firewall rules and power switch (network.py), the
registry of labs and the cleanup of a crashed run's leftovers (registry.py,
leftovers.py), the mail nodes with their failoverd configs and sshd (nodes.py,
postfix_node.py for the real mail node), the mail store's ext4 image
(store_image.py), the whole cluster with ZooKeeper and the client (cluster.py)
and the watch on who holds the VIP (vipwatch.py). It may import `chaos.records`,
`chaos.layout`, `chaos.services` (what a node runs) and the test harness in
`tests/support` (ZooKeeper, credentials); nothing of faults, judge or bench.
"""
