"""Small helpers around Deferred: fail, maybeDeferred, logError, debugging switches."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from types import CoroutineType
from typing import Any, ParamSpec, TypeVar

from deferred._core import Deferred, log, succeed
from deferred.failure import Failure

__all__ = ["fail", "getDebugging", "logError", "maybeDeferred", "setDebugging"]

T = TypeVar("T")
P = ParamSpec("P")


def fail(result: Failure | BaseException | None = None) -> Deferred[Any]:
    """A Deferred that has already failed with ``result`` (see ``errback``)."""
    d: Deferred[Any] = Deferred()
    d.errback(result)
    return d


def maybeDeferred(
    f: Callable[P, Deferred[T] | Coroutine[Any, Any, T] | T],
    *args: P.args, **kwargs: P.kwargs,
) -> Deferred[T]:
    """Call ``f`` and return its outcome as a Deferred, whatever form it takes.

    A returned Deferred is passed through; a coroutine is run with
    ``Deferred.fromCoroutine``; a returned Failure or a raised exception
    becomes a failed Deferred; any other value a fired one.
    """
    try:
        result = f(*args, **kwargs)
    except BaseException:
        return fail(Failure(captureVars=Deferred.debug))
    if isinstance(result, Deferred):
        return result
    if isinstance(result, Failure):
        return fail(result)
    if type(result) is CoroutineType:
        return Deferred.fromCoroutine(result)
    return succeed(result)  # type: ignore[arg-type]


def logError(err: Failure) -> Failure:
    """An errback that logs the failure (logger ``deferred``) and passes it on."""
    log.error("Unhandled error: %s", err.getErrorMessage(),
              exc_info=(err.type, err.value, err.getTracebackObject()))
    return err


def setDebugging(on: bool) -> None:
    """Record where each Deferred is created and first fired, for error reports.

    Slow: for debugging only. Affects Deferreds created afterwards.
    """
    Deferred.debug = bool(on)


def getDebugging() -> bool:
    """Whether ``setDebugging(True)`` is in force."""
    return Deferred.debug


