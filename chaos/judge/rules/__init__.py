"""The checker's rules: each a small named judgement of one recorded run.

A rule is a function `(Evidence) -> RuleResult` (protocol.py): it reads the
history, the scenario's Expectation and what was measured once for every rule
(evidence.py: serving intervals, faults, fault windows, takeovers), and says which
violations it found. chaos/judge/checker.py composes them, in a fixed order, into
one Verdict. One module per rule (or per pair of rules over the same measurement),
each with a docstring saying what it reads and what makes it fail.

Rules are pure: they import only judge/history.py and judge/serving.py (the
recorded values and who served when), never the lab, faults or I/O.
"""
