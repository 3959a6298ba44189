"""failoverd: active-passive failover for mail servers, fenced and leased through ZooKeeper."""

__version__ = "0.2.0"
