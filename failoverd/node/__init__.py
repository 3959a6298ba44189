"""The node itself: the daemon's loop and what it decides.

daemon.py gathers an Observation each tick and carries out what decision.py (pure:
no I/O, no clock) answers; transitions.py performs the takeover and the demotion
as explicit, guarded steps, through the narrow seam in state.py; eligibility.py,
switchover.py and membership.py hold the smaller decisions and the node's memory
of its cluster; publish.py publishes the node's status (member znode, HTTP view,
metrics); leftovers.py stops what a previous run left and gets a node back to
clean; requests.py judges the operator's requests before anyone acts on them;
operator_audit.py records operators' actions into history; confirmation.py says
when an operator's word that a node is down stands in for fencing it, and
schedule.py when a scheduled switchover is due; notify.py speaks systemd's notify
protocol and pets the watchdog.

This is the top of the daemon: it may import every other package of failoverd
except cli/ and checks/; nothing but main.py and cli/ imports it.
"""
