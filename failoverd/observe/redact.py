"""Secrets out of what leaves the node: history and member status in ZooKeeper
(readable by every operator), GET /status, hooks' environment, metric labels
(readable by whoever scrapes).

The first line of defence is that a failed resource command is described by its
config key path and exit status (`resources[2].start (command): exited with 1`),
never by its command line or output (failoverd/resources/base.py). Check and
fence commands are configured as argv lists too, and may end up in names and
reasons; `--password=x`, `PGPASSWORD=x`, `-px`, `token=...` or a URL with
credentials must not be published. Redaction is by shape, so it is a safety net,
not a licence: keep secrets in files the command reads.
"""

from __future__ import annotations

import re

MASK = "***"
_SECRET_WORD = (
    r"(?:password|passwd|passphrase|pass|pwd|secret|token|api[-_]?key|apikey|credentials?)"
)
# --password=x, password=x, token: x, "secret":"x", and the word inside a longer
# name: PGPASSWORD=x, MYSQL_PWD=x, --bind-passphrase=x, AWS_SECRET_ACCESS_KEY=x
# (the value up to whitespace/quote/comma). After the word only a separator may
# follow: "passed: 5" is no secret.
_KEY_VALUE = re.compile(
    rf"(?i)((?<![\w-])[\w-]*{_SECRET_WORD}(?:[-_][\w-]*)?[\"']?\s*[=:]\s*[\"']?)"
    r"([^\s\"',&;]+)"
)
# --password x, -p x (a flag followed by its value as the next word)
_FLAG_VALUE = re.compile(rf"(?i)((?:^|\s)--?{_SECRET_WORD}\s+)([^\s-][^\s]*)")
# mysql's -pX (the password glued to the flag; a bare -p prompts instead)
_GLUED_P = re.compile(r"((?:^|\s)-p)([^\s-][^\s]*)")
# sshpass -p X
_SSHPASS = re.compile(r"(\bsshpass\s+(?:-\S+\s+)*?-p\s+)(\S+)")
# curl -u user:pass, --user user:pass, --proxy-user user:pass
_USER_PASS = re.compile(r"((?:^|\s)(?:-u|-U|--user|--proxy-user)[=\s]*[^\s:]+:)(\S+)")
# scheme://user:password@host
_URL_CREDENTIALS = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)")
# Authorization: Bearer X / Basic X
_BEARER = re.compile(r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]{8,})")


def redact(text: str) -> str:
    text = _URL_CREDENTIALS.sub(rf"\g<1>{MASK}\g<3>", text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    text = _KEY_VALUE.sub(rf"\g<1>{MASK}", text)
    text = _SSHPASS.sub(rf"\g<1>{MASK}", text)
    text = _USER_PASS.sub(rf"\g<1>{MASK}", text)
    text = _GLUED_P.sub(rf"\g<1>{MASK}", text)
    return _FLAG_VALUE.sub(rf"\g<1>{MASK}", text)


def redact_argv(argv: tuple[str, ...] | list[str]) -> str:
    """An argv as one readable, redacted line."""
    return redact(" ".join(argv))
