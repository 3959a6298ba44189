"""How a ZooKeeper call fails, as failoverd's callers see it: one CoordinationError
naming what was being done, never a kazoo exception (only failoverd/zk/ knows kazoo).
The kinds a caller acts on have their own class."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kazoo.exceptions import (
    AuthFailedError,
    KazooException,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.handlers.threading import KazooTimeoutError

from failoverd.zk.znodes import ZnodeError


class CoordinationError(Exception):
    """A ZooKeeper call failed or missed its deadline."""


class ZnodeMissing(CoordinationError):
    """The znode a call was about does not exist (fix-acl skips it)."""


class WriteConflict(CoordinationError):
    """A conditional write was refused: another session created, changed or holds
    what the write was conditional on. `error` names ZooKeeper's answer."""

    def __init__(self, what: str, error: str) -> None:
        super().__init__(f"{what}: {error}")
        self.error = error


class AccessRefused(CoordinationError):
    """ZooKeeper answered, but not to this identity: a mistake of auth, not of the
    network. `kind` says which: "sasl_required" (the servers enforce a SASL login
    and none was offered), "login_refused" (the user or password is wrong) or
    "no_permission" (the znode's ACL does not name this identity: NoAuth)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


_ACCESS_KINDS: tuple[tuple[type[Exception], str], ...] = (
    (SessionClosedRequireSaslError, "sasl_required"),
    (AuthFailedError, "login_refused"),
    (NoAuthError, "no_permission"),
)


@contextmanager
def zk_errors(what: str) -> Iterator[None]:
    """Turn kazoo's exceptions, its timeout and unreadable znode content inside the
    block into a CoordinationError that begins with `what`."""
    try:
        yield
    except KazooTimeoutError:
        raise CoordinationError(f"{what}: no answer from ZooKeeper in time") from None
    except (SessionClosedRequireSaslError, AuthFailedError, NoAuthError) as e:
        kind = next(k for cls, k in _ACCESS_KINDS if isinstance(e, cls))
        raise AccessRefused(f"{what}: {type(e).__name__}", kind) from None
    except (KazooException, ZnodeError) as e:
        raise CoordinationError(f"{what}: {type(e).__name__} {e}".strip()) from None
