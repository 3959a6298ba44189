"""The time of `failoverctl switchover --at TIME`, as the request stores it.

Two spellings: ISO 8601 with its offset (`2026-12-07T02:00:00+01:00`, `...Z`), or
`HH:MM`, the next such time on this machine's clock and zone (today if it is
still ahead, else tomorrow). A time without an offset other than `HH:MM` is
refused: whose clock would it be? The request stores UTC epoch seconds, which
mean the same on every node whatever their zones.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from failoverd.zk.znodes import MAX_SCHEDULE_AHEAD

_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_at(text: str, now: datetime) -> float:
    """POSIX seconds for `text`, judged at `now` (an aware datetime in the local zone).
    ValueError, with a sentence for the operator, for anything else or for a time
    that is not ahead of `now` or is more than MAX_SCHEDULE_AHEAD ahead."""
    text = text.strip()
    clock = _CLOCK.fullmatch(text)
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        day = now.date()
        at = _local(day, hour, minute)
        if at <= now:
            at = _local(day + timedelta(days=1), hour, minute)
    else:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither HH:MM nor an ISO 8601 time with an offset "
                "(e.g. 2026-12-07T02:00:00+01:00 or 2026-12-07T01:00:00Z)"
            ) from None
        if at.tzinfo is None:
            raise ValueError(
                f"{text!r} has no offset: add one (+01:00, Z), or give HH:MM for local time"
            )
    ahead = (at - now).total_seconds()
    if ahead <= 0:
        raise ValueError(f"{text!r} is not in the future")
    if ahead > MAX_SCHEDULE_AHEAD:
        raise ValueError(f"{text!r} is more than {MAX_SCHEDULE_AHEAD / 86400:g} days ahead")
    return at.timestamp()


def _local(day: object, hour: int, minute: int) -> datetime:
    # A naive time made aware in the local zone, with the offset valid on that day
    # (a DST change between today and tomorrow moves the offset, not the clock time).
    naive = datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}")
    return naive.astimezone()
