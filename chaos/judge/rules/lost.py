"""`lost`: a message the client saw acknowledged (250) that is nowhere to be found.

An acknowledgement is a promise to the sender; a failover that breaks it loses
mail silently. Reads the client's deliveries and, as what was kept, either the
store's accepted writes (the toy service) or, with the real mail node, the
messages read back from the mailboxes over IMAP (`Evidence.delivered`). Fails once,
listing the first 20 acknowledged messages that are missing.
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult


def lost(ev: Evidence) -> RuleResult:
    h = ev.history
    stored = {w.msg for w in h.writes if w.accepted} if ev.delivered is None else ev.delivered
    missing = sorted(d.n for d in h.deliveries if d.ok and d.n not in stored)
    where = "the store" if ev.delivered is None else "any mailbox (read over IMAP)"
    if not missing:
        return RuleResult.of("lost", [])
    return RuleResult.of(
        "lost", [f"{len(missing)} acknowledged messages not in {where}: {missing[:20]}"]
    )
