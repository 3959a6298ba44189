"""The resources a node starts when it becomes active and stops when it is not:
each kind in its own module (command.py, systemd.py, vip.py with its gratuitous
ARP in garp.py and announce.py, ocf.py), what they share (base.py: the Resource
protocol, errors, stopping them all) and build.py, which makes them from config.
Also what watches them while active (watch.py), the environment handed to systemd
units (systemd_dropin.py), the operations given up on (abandoned.py) and the record
of what this node started (started.py), which fence-self and the start-up cleanup
stop besides what the config file names now.

A failed command is described by its config key path, never by its command line
or output (base.py says why). This package may import config/, process.py,
observe/fastlog.py and observe/redact.py. It is imported by fence-self, so
importing it must stay cheap (no structlog).
"""
