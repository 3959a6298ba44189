"""A bounded memory of ids (operator requests seen and served).

Request ids come from the `control` znode, which operators write: a daemon that
remembered every id forever could be made to grow without bound by anyone who can
write `control`. The newest `limit` ids are kept; forgetting an old one only means
that, should exactly that request reappear, it is treated as new (its timeout
starts again), which an operator could have done with a fresh id anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

LIMIT = 64


class RecentIds:
    """A set of ids, each with the time it was first seen, newest LIMIT kept."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()

    def add(self, rid: str, when: float = 0.0) -> None:
        if rid not in self._seen:
            self._seen[rid] = when
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)

    def __setitem__(self, rid: str, when: float) -> None:
        self.add(rid, when)

    def get(self, rid: str, default: float) -> float:
        return self._seen.get(rid, default)

    def __contains__(self, rid: object) -> bool:
        return rid in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def __iter__(self) -> Iterator[str]:
        return iter(self._seen)
