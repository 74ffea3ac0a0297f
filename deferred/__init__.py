"""Deferred: Twisted's callback chains for modern Python, with async/await both ways.

Everything users of ``twisted.internet.defer`` and ``twisted.python.failure``
rely on, under the same names::

    from deferred import Deferred, succeed, gatherResults, inlineCallbacks

    d = gatherResults([succeed(1), succeed(2)])
    d.addCallback(sum).addCallback(print)          # 3

Coroutines await Deferreds (``ensureDeferred``), and asyncio code awaits them
too (``await d`` inside a Task), with cancellation crossing both ways.

The package does no I/O and imports nothing else of torsion.
"""

from deferred._core import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    NotACoroutineError,
    TimeoutError,
    passthru,
    succeed,
)
from deferred._helpers import fail, getDebugging, logError, maybeDeferred, setDebugging
from deferred._inline import ensureDeferred, inlineCallbacks, returnValue
from deferred.combinators import (
    FAILURE,
    SUCCESS,
    DeferredList,
    FailureGroup,
    FirstError,
    gatherResults,
    race,
)
from deferred.failure import Failure, NoCurrentExceptionError
from deferred.group import DeferredGroup, GroupFinishedError
from deferred.sync import (
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    QueueOverflow,
    QueueUnderflow,
)

__all__ = [
    "FAILURE",
    "SUCCESS",
    "AlreadyCalledError",
    "CancelledError",
    "Deferred",
    "DeferredGroup",
    "DeferredList",
    "DeferredLock",
    "DeferredQueue",
    "DeferredSemaphore",
    "Failure",
    "FailureGroup",
    "FirstError",
    "GroupFinishedError",
    "NoCurrentExceptionError",
    "NotACoroutineError",
    "QueueOverflow",
    "QueueUnderflow",
    "TimeoutError",
    "ensureDeferred",
    "fail",
    "gatherResults",
    "getDebugging",
    "inlineCallbacks",
    "logError",
    "maybeDeferred",
    "passthru",
    "race",
    "returnValue",
    "setDebugging",
    "succeed",
]
