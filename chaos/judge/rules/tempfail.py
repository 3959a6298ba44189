"""`not_tempfail`: a fault that must be answered with temporary failures was not.

When the mail store is full, the honest answer is 4xx ("try again later"): the
sender keeps the message. A 5xx bounces it, a timeout or a refused connection
leaves it to chance. Scenarios with `tempfail_during_fault` say so. Reads the
client's deliveries started inside each fault. Fails when a failed delivery in
the fault got anything but a 4xx, and when none got a 4xx at all (the fault never
bit, so the run proves nothing); other scenarios pass.
"""

from __future__ import annotations

from chaos.judge.rules.evidence import Evidence
from chaos.judge.rules.protocol import RuleResult


def not_tempfail(ev: Evidence) -> RuleResult:
    messages = []
    if not ev.expect.tempfail_during_fault:
        return RuleResult.of("not_tempfail", messages)
    for f in ev.faults:
        hi = ev.in_force_until(f)
        inside = [d for d in ev.history.deliveries if f.start <= d.t_start <= hi]
        wrong = [d for d in inside if not d.ok and not (d.code and 400 <= d.code < 500)]
        if wrong:
            d = wrong[0]
            messages.append(
                f"{len(wrong)} deliveries during {f.name} failed without a 4xx, first "
                f"message {d.n}: code {d.code}, {d.error or 'no error'}"
            )
        if not any(d.code and 400 <= d.code < 500 for d in inside):
            messages.append(f"no delivery during {f.name} got a 4xx: it never bit")
    return RuleResult.of("not_tempfail", messages)
