"""`corrupt_history`: a history file has an unreadable line (not a torn last one).

A verdict is only as good as the history it reads: a line dropped silently could
be the one write that proves a split brain. The loader (chaos/judge/history.py)
keeps each unreadable line's place in `History.corrupt`; a torn last line (the
writer killed mid-write) is not corrupt. Fails once per unreadable line.
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult


def corrupt_history(ev: Evidence) -> RuleResult:
    return RuleResult.of("corrupt_history", list(ev.history.corrupt))
