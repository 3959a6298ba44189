"""The harness of the tests' own: real ZooKeeper servers, credentials, sshd, the loopback
fencer, the checkout, certificates, a fake watchdog and the import graph. The
integration tests and the chaos lab import it; it imports nothing of chaos/."""
