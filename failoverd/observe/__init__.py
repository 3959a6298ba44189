"""What the node tells the world: its log lines (log.py, and fastlog.py for the
short fence-self process), Prometheus metrics (metrics.py), the HTTP role endpoints
for load balancers (endpoints.py, whose requests request_head.py reads within
bounds), the operator's hooks run after a transition (hooks.py), and the
redaction that keeps secrets out of all of them (redact.py).

This package may import config/ and zk/'s pure lease clock; it imports nothing that
acts on the cluster.
"""
