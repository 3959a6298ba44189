"""What runs on a lab node, or against it: the services failoverd starts and the client.

The toy SMTP service (toy_smtp.py) and its shared mail store (toy_store.py),
Debian's Postfix and Dovecot as resources of the real mail node (postfix.py),
the client that sends numbered messages to the VIP (client.py), and the tiny
loopback SMTP service of the integration tests and the demo (loopback_smtp.py).
Each runs as its own process (`python -m chaos.services.<name>`), inside a lab
node or on loopback, and tells the judge what it did only through its records.
It may import only `chaos.records` and `chaos.layout` (the VIP, the store's
mount point): never the lab that starts it.
"""
