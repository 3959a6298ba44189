"""`failoverctl`, the operators' command: status, history, maintenance,
switchover, failover, fence-check, backup and restore, the ACL tools.

failoverctl.py holds the click group and its commands, backup.py the backup and
restore commands; common.py what every command shares (loading the config, the
operator's identity and credential, a ZooKeeper session whose errors become clear
messages and exit codes); identity.py and terminal.py say who the operator is and
make text from ZooKeeper safe to print.

This package may import config/, zk/ (only through its Coordinator), fencing/ and
node/'s pure decisions; nothing in the daemon imports it.
"""
