"""The chaos lab: real failoverd daemons in network namespaces, real faults, a checker.

The lab is not part of the installed package (pyproject: only `failoverd*` goes
onto mail servers); it runs from a checkout, `python -m chaos ...` from the
repository root. Its packages, by job:

* `lab/`: the namespaces, the network and its power switch, the nodes and their
  failoverd configs, the store image, the VIP watch. It may import `services`
  (what a node runs) and the test harness in `tests/support` (ZooKeeper,
  credentials); nothing of faults, judge or bench.
* `services/`: what runs on a lab node or against it: the toy SMTP service and its
  store, Postfix and Dovecot, the client. Imports only `chaos.records`.
* `faults/`: nemeses, triggers, the scenarios, the soak and the negative controls.
  Imports `lab`, `services` and `judge`.
* `judge/`: the recorded history, the checker's rules, the mail read-back, the
  timeline and the table. Pure judgement, except the read-back, which reads the
  lab's store while the lab still runs.
* `bench/`: `python -m chaos.bench`, the measurements and keepalived's baseline.
* `runner.py`, `parallel.py`: run scenarios (one lab per repetition, several at
  once); `records.py`: the JSON-lines files every lab process appends to;
  `demo.py`: the loopback demo.

Importing `chaos` changes nothing in the environment: the command-line entry
points call `tests.support.checkout.use_checkout()` so the processes the lab
starts import this checkout.
"""
