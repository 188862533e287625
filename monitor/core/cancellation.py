"""Tells the AWS readers, between pages, whether the work of the thread they run in is still wanted.

The daemon runs each rule check in a thread of its own and abandons it at its deadline; a thread
cannot be killed, so the check's thread carries a token (whether its check is still wanted) that
the readers consult before each request of a listing: an abandoned check stops at its next page
instead of paging on in the background. A thread that carries no token (the CLI's check, the
topology job) is never told to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# A context variable rather than a thread-local: a new thread starts with no token, and a token
# set inside `bound` never leaks to the code that runs after it in the same thread.
_wanted: ContextVar[Callable[[], bool] | None] = ContextVar("albsg_work_wanted", default=None)


class Cancelled(Exception):
    """Raised in a thread whose work is no longer wanted (its check was abandoned): it stops there."""


@contextmanager
def bound(wanted: Callable[[], bool]) -> Iterator[None]:
    """Within this block, `wanted()` says whether this thread's work is still wanted."""
    token = _wanted.set(wanted)
    try:
        yield
    finally:
        _wanted.reset(token)


@contextmanager
def shielded() -> Iterator[None]:
    """Within this block nothing is cancelled: work that must finish even when the caller is
    abandoned (a first discovery, which the next check waits for rather than starting another)."""
    token = _wanted.set(None)
    try:
        yield
    finally:
        _wanted.reset(token)


def stop_if_unwanted(what: str) -> None:
    """Raise Cancelled (naming `what` was about to be done) when this thread's work is no longer wanted."""
    wanted = _wanted.get()
    if wanted is not None and not wanted():
        raise Cancelled(what)
