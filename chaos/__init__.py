"""The chaos lab: real failoverd daemons in network namespaces, real faults, a checker.

The lab is not part of the installed package (pyproject: only `failoverd*` goes
onto mail servers); it runs from a checkout, `python -m chaos ...` from the
repository root. Its parts, from the bottom up; each imports only parts listed
before it (and the test harness in `tests/support`):

* `records.py`: the JSON-lines files every lab process appends to and the judge
  reads; `layout.py`: the lab's addresses (hosts, VIP) and the paths it claims
  in the root namespace. Both import nothing of the lab.
* `services/`: what runs on a lab node or against it: the toy SMTP service and its
  store, Postfix and Dovecot, the client. Imports only `records` and `layout`.
* `lab/`: the namespaces, the network and its power switch, the registry of labs
  and the cleanup of leftovers, the nodes and their failoverd configs, the store
  image, the VIP watch. Imports `services` (what a node runs); nothing of
  faults, judge or bench.
* `judge/`: the recorded history, the checker's rules, the timeline and the
  table: pure judgement of recorded files. The mail read-back is the exception:
  it reads the lab's store while the lab still runs, so it imports `lab`.
* `faults/`: nemeses, triggers, the scenario types, the scenarios and their
  catalogue, the soak and the negative controls. Imports `lab`, `services` and
  `judge`; the soak and the controls also run repetitions (`repetition.py`).
* `repetition.py`: one repetition of a scenario, in a fresh lab (it imports only
  the scenario types of `faults/`); `parallel.py`: several repetitions at once;
  `runner.py`: `python -m chaos run`, serial or parallel, and the run's summary.
* `bench/`: `python -m chaos.bench`, the measurements and keepalived's baseline.
  Imports any of the above.
* `demo.py`: the loopback demo (only the test harness); `__main__.py`: the
  command line.

Importing `chaos` changes nothing in the environment: the command-line entry
points call `tests.support.checkout.use_checkout()` so the processes the lab
starts import this checkout.
"""
