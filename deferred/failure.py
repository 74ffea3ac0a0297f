"""Failure: an exception, with its traceback, that can travel down a callback chain.

A Python exception lives on the stack: once the ``except`` block ends it is
gone. Asynchronous code needs to hand an error to whoever is waiting for a
result, perhaps much later, so ``Failure`` wraps the exception together with its
traceback. It has Twisted's API (``twisted.python.failure.Failure``)::

    try:
        1 / 0
    except ZeroDivisionError:
        f = Failure()            # captures the exception being handled
    f.check(ZeroDivisionError)   # -> ZeroDivisionError
    f.getErrorMessage()          # -> 'division by zero'
    print(f.getTraceback())      # the original frames, as Python prints them

A live traceback keeps every frame on it alive, and with the frames all their
local variables. ``cleanFailure()`` (which a Deferred calls when a failure is
left at the end of its chain) turns the traceback into plain tuples of names and
line numbers, so the report still shows the original frames but nothing else is
kept alive.
"""

from __future__ import annotations

import io
import linecache
import sys
from collections.abc import Generator
from types import TracebackType
from typing import IO, Any, NoReturn

__all__ = ["Failure", "NoCurrentExceptionError"]

# One frame as Twisted records it:
# (function name, file name, line number, locals items, globals items).
FrameTuple = tuple[str, str, int, Any, Any]

_failure_count = 0


class NoCurrentExceptionError(Exception):
    """``Failure()`` was called outside an ``except`` block, with nothing to capture."""


def _qual(cls: object) -> str:
    """The fully qualified name of a class, e.g. ``builtins.ValueError``."""
    module = getattr(cls, "__module__", None)
    name = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", None)
    if module is None or name is None:
        return repr(cls)
    return f"{module}.{name}"


def _safe_str(obj: object) -> str:
    """``str(obj)``, or a placeholder naming the error if ``__str__`` itself fails."""
    try:
        return str(obj)
    except BaseException as e:  # a broken __str__ must not break error reporting
        return f"<{_qual(type(obj))} instance with broken __str__: {type(e).__name__}>"


def _safe_repr(obj: object) -> str:
    try:
        return repr(obj)
    except BaseException as e:
        return f"<{_qual(type(obj))} instance with broken __repr__: {type(e).__name__}>"


class _FakeCode:
    """Enough of a code object for ``traceback.extract_tb`` to read."""

    def __init__(self, name: str, filename: str) -> None:
        self.co_name = name
        self.co_qualname = name
        self.co_filename = filename
        self.co_argcount = 0
        self.co_varnames: tuple[str, ...] = ()


class _FakeFrame:
    def __init__(self, frame: FrameTuple) -> None:
        name, filename, lineno, localz, globalz = frame
        self.f_code = _FakeCode(name, filename)
        self.f_lineno = lineno
        self.f_locals = dict(localz)
        self.f_globals = dict(globalz)
        self.f_back = None


class _FakeTraceback:
    """A stand-in traceback rebuilt from frame tuples after the real one was dropped.

    ``tb_lasti`` is -1 so ``traceback`` does not ask the fake code for
    column positions.
    """

    tb_lasti = -1

    def __init__(self, frame: FrameTuple, tb_next: _FakeTraceback | None) -> None:
        self.tb_frame = _FakeFrame(frame)
        self.tb_lineno = frame[2]
        self.tb_next = tb_next


class Failure(BaseException):
    """An exception and its traceback, packaged to be passed around.

    Args:
        exc_value: the exception. ``None`` (the default) captures the exception
            currently being handled, and raises ``NoCurrentExceptionError`` when
            there is none.
        exc_type: its class, when it should differ from ``type(exc_value)``.
        exc_tb: its traceback; by default the exception's own ``__traceback__``.
        captureVars: also record each frame's locals and globals (slow; shown by
            ``getTraceback(detail="verbose")``).

    Attributes:
        value: the exception instance.
        type: the exception class.
        tb: the live traceback, or ``None`` once ``cleanFailure()`` has run.
        frames: the traceback as (name, file, line, locals, globals) tuples,
            innermost last.
    """

    pickled = 0
    _parents: list[Any] | None = None
    _frames: list[FrameTuple] | None = None

    # BaseException.__new__ stores the constructor arguments in ``args``;
    # nobody reads them on a Failure, so skip that work.
    def __new__(cls, *args: Any, **kwargs: Any) -> Failure:
        return BaseException.__new__(cls)

    def __init__(
        self,
        exc_value: BaseException | Failure | None = None,
        exc_type: type[BaseException] | None = None,
        exc_tb: TracebackType | None = None,
        captureVars: bool = False,
    ) -> None:
        global _failure_count
        _failure_count += 1
        self.count = _failure_count
        self.captureVars = captureVars
        tb: TracebackType | None
        if exc_value is None:
            exc_type, exc_value, tb = sys.exc_info()
            if exc_value is None or exc_type is None:
                raise NoCurrentExceptionError()
        else:
            if exc_type is None:
                exc_type = type(exc_value)
            tb = None
        if isinstance(exc_value, Failure):
            # Wrapping a Failure (e.g. one raised by raiseException and caught
            # again) yields a copy of it, as in Twisted.
            self.__dict__ = dict(exc_value.__dict__)
            return
        self.type: type[BaseException] = exc_type
        self.value: BaseException = exc_value
        if tb is None:
            tb = exc_tb if exc_tb is not None else exc_value.__traceback__
        self.tb: TracebackType | None = tb
        if captureVars:
            _ = self.frames  # snapshot the variables now, before they change

    @classmethod
    def _withoutTraceback(cls, value: BaseException) -> Failure:
        """A Failure for an exception that was never raised: the fast path."""
        global _failure_count
        self = BaseException.__new__(cls)
        _failure_count += 1
        self.count = _failure_count
        self.captureVars = False
        self.type = type(value)
        self.value = value
        self.tb = value.__traceback__
        return self

    # -- what the failure is --------------------------------------------------

    @property
    def parents(self) -> list[Any]:
        """Qualified names of the exception's class and its bases (for ``check``)."""
        if self._parents is None:
            t = self.type
            if isinstance(t, type):
                self._parents = [_qual(c) for c in t.__mro__]
            else:
                self._parents = [t]
        return self._parents

    @parents.setter
    def parents(self, parents: list[Any]) -> None:
        self._parents = parents

    @property
    def frames(self) -> list[FrameTuple]:
        """The traceback's frames as tuples, outermost first.

        When the exception was re-raised from a Failure that had already let
        go of its traceback (``raiseException``, or thrown into a generator),
        that Failure's frames follow: the report goes on to where the error
        really started, as it would with the live traceback.
        """
        if self._frames is None:
            frames: list[FrameTuple] = []
            tb = self.tb
            last: Any = None
            while tb is not None:
                f = last = tb.tb_frame
                localz: Any = ()
                globalz: Any = ()
                if self.captureVars:
                    loc = dict(f.f_locals)
                    glo = {} if f.f_locals is f.f_globals else dict(f.f_globals)
                    loc.pop("__builtins__", None)
                    glo.pop("__builtins__", None)
                    # Stored as reprs: a snapshot, and no object kept alive.
                    localz, globalz = _safe_repr_items(loc.items()), _safe_repr_items(glo.items())
                frames.append((f.f_code.co_name, f.f_code.co_filename, tb.tb_lineno,
                               localz, globalz))
                tb = tb.tb_next
            if last is not None and last.f_code is _RAISE_CLEANED_CODE:
                # Raised by _raise_cleaned: swap its frame for the frames of
                # the Failure it raised.
                frames.pop()
                origin = last.f_locals.get("failure")
                if isinstance(origin, Failure) and origin is not self:
                    frames.extend(origin.frames)
            self._frames = frames
        return self._frames

    @frames.setter
    def frames(self, frames: list[FrameTuple]) -> None:
        self._frames = frames

    @property
    def stack(self) -> list[FrameTuple]:
        """Always empty; kept because old Twisted code reads it."""
        return []

    @stack.setter
    def stack(self, stack: list[FrameTuple]) -> None:
        del stack

    def check(self, *errorTypes: type[BaseException] | str) -> Any:
        """Return the first of ``errorTypes`` this failure is an instance of, else None.

        Types may also be given as fully qualified names (``"builtins.KeyError"``).
        """
        parents = self.parents
        for error in errorTypes:
            name = _qual(error) if isinstance(error, type) else error
            if name in parents:
                return error
        return None

    def trap(self, *errorTypes: type[BaseException] | str) -> Any:
        """Like ``check``, but re-raise the original exception when nothing matches.

        This is the errback idiom for handling only the errors you expect::

            def on_error(failure):
                failure.trap(KeyError)   # anything else keeps propagating
                return default
        """
        error = self.check(*errorTypes)
        if error is None:
            self.raiseException()
        return error

    def raiseException(self) -> NoReturn:
        """Raise the original exception, with its original traceback when it is kept.

        After ``cleanFailure`` a Failure made from the raised exception still
        reports the original frames (see ``frames``).
        """
        tb = self.tb
        if tb is None and self._frames:
            _raise_cleaned(self)
        raise self.value.with_traceback(tb)

    def throwExceptionIntoGenerator(self, g: Generator[Any, Any, Any]) -> Any:
        """Throw the original exception into generator ``g``; return what it yields next.

        As with ``raiseException``, the original frames are not lost when the
        traceback itself is gone: ``inlineCallbacks`` and coroutines awaiting
        each other report the whole story of an error.
        """
        tb = self.tb
        value = self.value
        if tb is None and self._frames:
            # A traceback of just the _raise_cleaned frame, which knows us.
            # (Raising here must not change the exception's __context__.)
            context = value.__context__
            try:
                _raise_cleaned(self)
            except BaseException as e:
                if e is not value or e.__traceback__ is None:
                    raise
                tb = e.__traceback__.tb_next
            value.__context__ = context
        return g.throw(value.with_traceback(tb))

    def getErrorMessage(self) -> str:
        """``str()`` of the exception, safely (a broken ``__str__`` is reported, not raised)."""
        if isinstance(self.value, Failure):
            return self.value.getErrorMessage()
        return _safe_str(self.value)

    # -- letting go of frames -------------------------------------------------

    def cleanFailure(self) -> None:
        """Replace the live traceback by frame tuples, so no frame is kept alive.

        The exception's own ``__traceback__`` is cleared too: it points at the
        same frames.
        """
        _ = self.frames  # computed from the traceback before it goes
        self.tb = None
        if getattr(self.value, "__traceback__", None) is not None:
            self.value.__traceback__ = None

    def getTracebackObject(self) -> Any:
        """The traceback, or a stand-in that ``traceback.extract_tb`` accepts, or None."""
        if self.tb is not None:
            return self.tb
        fake: _FakeTraceback | None = None
        for frame in reversed(self.frames):
            fake = _FakeTraceback(frame, fake)
        return fake

    # -- reporting --------------------------------------------------------------

    def getTraceback(self, elideFrameworkCode: int = 0, detail: str = "default") -> str:
        """The report Python would print for this exception.

        Args:
            elideFrameworkCode: ignored; kept for Twisted compatibility.
            detail: ``"default"`` (Python's format), ``"brief"`` (one line a
                frame) or ``"verbose"`` (with locals and globals when captured).
        """
        out = io.StringIO()
        self.printTraceback(out, elideFrameworkCode, detail)
        return out.getvalue()

    def getBriefTraceback(self) -> str:
        """The traceback in brief form: one ``file:line:function`` line a frame."""
        return self.getTraceback(detail="brief")

    def printTraceback(
        self, file: IO[str] | None = None, elideFrameworkCode: int = 0,
        detail: str = "default",
    ) -> None:
        """Write ``getTraceback(detail=detail)`` to ``file`` (default: standard error)."""
        if detail not in ("default", "brief", "verbose"):
            raise ValueError(f"detail must be 'default', 'brief' or 'verbose', not {detail!r}")
        w = (file if file is not None else sys.stderr).write
        frames = self.frames
        if detail == "verbose":
            w(f"*--- Failure #{self.count}{' (pickled) ' if self.pickled else ' '}---\n")
        elif detail == "brief":
            head = "Traceback" if frames else "Traceback (failure with no frames)"
            w(f"{head}: {_safe_str(self.type)}: {_safe_str(self.value)}\n")
        else:
            w("Traceback (most recent call last):\n")
        _write_frames(frames, w, detail, self.captureVars)
        if not frames and detail != "brief":
            w("Failure: ")
        if detail != "brief":
            w(f"{_qual(self.type)}: {_safe_str(self.value)}\n")
        if isinstance(self.value, Failure):
            w(" (chained Failure)\n")
            self.value.printTraceback(file, elideFrameworkCode, detail)
        if detail == "verbose":
            w(f"*--- End of Failure #{self.count} ---\n")

    def printBriefTraceback(self, file: IO[str] | None = None,
                            elideFrameworkCode: int = 0) -> None:
        """``printTraceback`` with ``detail="brief"``."""
        self.printTraceback(file, elideFrameworkCode, detail="brief")

    def printDetailedTraceback(self, file: IO[str] | None = None,
                               elideFrameworkCode: int = 0) -> None:
        """``printTraceback`` with ``detail="verbose"``."""
        self.printTraceback(file, elideFrameworkCode, detail="verbose")

    def __repr__(self) -> str:
        return f"<{_qual(type(self))} {_qual(self.type)}: {self.getErrorMessage()}>"

    def __str__(self) -> str:
        return f"[Failure instance: {self.getBriefTraceback()}]"

    # -- pickling: frames travel as tuples, never the traceback -----------------

    # The state uses Twisted's keys ("parents", "frames"), not our private
    # attribute names: code that ships failures around (Perspective Broker,
    # Foolscap) reads them from the state dictionary.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_parents", None)
        state.pop("_frames", None)
        state["parents"] = self.parents
        state["frames"] = self.frames
        state["tb"] = None
        state["pickled"] = 1
        return state

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        state = dict(state or {})
        if "parents" in state:
            self._parents = state.pop("parents")
        if "frames" in state:
            self._frames = state.pop("frames")
        self.__dict__.update(state)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_new_failure, (), self.__getstate__())


def _raise_cleaned(failure: Failure) -> NoReturn:
    """Raise the exception of ``failure``, whose traceback is gone, from here.

    The raised exception's traceback then ends in this frame, and its
    ``failure`` local lets ``Failure.frames`` continue with the frames kept
    in ``failure``: tuples, so the original frames stay released.
    """
    raise failure.value.with_traceback(None)


_RAISE_CLEANED_CODE = _raise_cleaned.__code__


def _new_failure() -> Failure:
    return BaseException.__new__(Failure)


def _safe_repr_items(items: Any) -> list[tuple[str, str]]:
    return [(name, _safe_repr(value))
            for name, value in items]


def _write_frames(frames: list[FrameTuple], w: Any, detail: str, captured: bool) -> None:
    if detail == "brief":
        for name, filename, lineno, _, _ in frames:
            w(f"{filename}:{lineno}:{name}\n")
    elif detail == "default":
        for name, filename, lineno, _, _ in frames:
            w(f'  File "{filename}", line {lineno}, in {name}\n')
            line = linecache.getline(filename, lineno).strip()
            if line:
                w(f"    {line}\n")
    else:
        for name, filename, lineno, localz, globalz in frames:
            w(f"{filename}:{lineno}: {name}(...)\n")
            if captured:
                w(" [ Locals ]\n")
                for var, val in localz:
                    w(f"  {var} : {val}\n")
                w(" ( Globals )\n")
                for var, val in globalz:
                    w(f"  {var} : {val}\n")
        if not captured:
            w(" [Capture of Locals and Globals disabled (use captureVars=True)]\n")
