"""The judgement of a run: its recorded history, the checker, and what is shown of it.

The history loader (history.py: the records of a run folder as plain values, and
a scenario's Expectation), the checker's rules (checker.py), the timeline
picture (timeline.py), the Markdown table of many runs (table.py), the commit a
run was made on (provenance.py), and the read-back of the real mail node's
mailboxes and store (readback.py). Judgement is pure: it reads recorded files
and imports only `chaos.records` (and, for the commit, the checkout's path from
`tests/support`). The read-back is the one exception, as it
reads the store while the lab still runs: it may import `chaos.lab`,
`chaos.services` and `chaos.layout`. Nothing here imports faults or bench.
"""
