"""The benchmark (`python -m chaos.bench`): how fast, how safe, and at what cost.

The lab cases of unplanned and planned failovers (lab_cases.py), judged slice by
slice with the checker (slices.py) and explained by where a takeover's time went
(causes.py); keepalived as the baseline on the same lab and faults
(keepalived.py); one daemon's footprint on loopback (footprint.py, loopsshd.py);
many clusters on one ensemble (scale.py); the tables, targets and plot
(report.py); and suite.py, which runs them. It sits at the top: it may import
the lab, the faults, the judge, `chaos.repetition` (for its signal handling),
`chaos.records`, `chaos.layout`, failoverd's znode formats and the test harness,
and nothing but `python -m chaos bench` imports it.
"""
