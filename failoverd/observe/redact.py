"""Secrets out of what leaves the node: history and member status in ZooKeeper
(readable by every operator), metric labels (readable by whoever scrapes).

Resource, check and fence commands are configured as argv lists, and their
output ends up in failure reasons; `--password=x`, `token=...` or a URL with
credentials in either must not be published. Redaction is by shape, so it is a
safety net, not a licence: keep secrets in files the command reads.
"""

from __future__ import annotations

import re

MASK = "***"
_SECRET_WORD = r"(?:password|passwd|pass|pwd|secret|token|api[-_]?key|apikey|credentials?)"
# --password=x, password=x, token: x, "secret":"x"  (the value up to whitespace/quote/comma)
_KEY_VALUE = re.compile(rf"(?i)(\b{_SECRET_WORD}\b[\"']?\s*[=:]\s*[\"']?)([^\s\"',&;]+)")
# --password x, -p x (a flag followed by its value as the next word)
_FLAG_VALUE = re.compile(rf"(?i)((?:^|\s)--?{_SECRET_WORD}\s+)([^\s-][^\s]*)")
# scheme://user:password@host
_URL_CREDENTIALS = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)")
# Authorization: Bearer X / Basic X
_BEARER = re.compile(r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]{8,})")


def redact(text: str) -> str:
    text = _URL_CREDENTIALS.sub(rf"\g<1>{MASK}\g<3>", text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    text = _KEY_VALUE.sub(rf"\g<1>{MASK}", text)
    return _FLAG_VALUE.sub(rf"\g<1>{MASK}", text)


def redact_argv(argv: tuple[str, ...] | list[str]) -> str:
    """An argv as one readable, redacted line."""
    return redact(" ".join(argv))
