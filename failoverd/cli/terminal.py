"""Text from ZooKeeper made safe for a terminal.

Member reasons, history entries and operator names are written by other
machines (and, for `control`, by any operator). An escape sequence in them
could rewrite what `failoverctl status` shows, retitle the window or, on some
terminals, inject input. Everything failoverctl prints from ZooKeeper passes
through `printable`: control characters (C0, DEL, C1) and Unicode
bidirectional overrides become visible \\xNN / \\uNNNN escapes.
"""

from __future__ import annotations

import re

# C0 except nothing (tabs and newlines in a field are escaped too: one field, one
# line), DEL, C1, and the bidi controls that reorder what the reader sees.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}"


def printable(value: object) -> str:
    return _UNSAFE.sub(_escape, str(value))
