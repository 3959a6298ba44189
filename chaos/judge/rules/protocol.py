"""What a rule says, and how several rules make one judgement.

After Jepsen's checker protocol: a rule is a small named function of the run, each
testable alone, and `compose` runs several over the same evidence, keeping their
order, so the checker's problems always read in the same order. A run passes a
rule when the rule found no violation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from chaos.judge.rules.evidence import Evidence


@dataclass
class Violation:
    rule: str  # the kind of problem, e.g. "overlap", "lost", "not_settled"
    message: str


@dataclass(frozen=True)
class RuleResult:
    """One rule's judgement: its name and the violations it found (none: passed)."""

    name: str
    violations: list[Violation]

    @property
    def passed(self) -> bool:
        return not self.violations

    @classmethod
    def of(cls, name: str, messages: Iterable[str]) -> RuleResult:
        """A rule whose violations all carry its own name."""
        return cls(name, [Violation(name, m) for m in messages])


Rule = Callable[[Evidence], RuleResult]


def compose(rules: Sequence[Rule], ev: Evidence) -> list[RuleResult]:
    """Every rule's judgement of `ev`, in the order of `rules`."""
    return [rule(ev) for rule in rules]
