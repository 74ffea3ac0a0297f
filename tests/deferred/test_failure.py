"""Failure: capture, inspection, traceback reports, letting go of frames, pickling."""

from __future__ import annotations

import pickle
import traceback
import weakref
from collections.abc import Generator
from typing import Any

import pytest

from deferred import Failure, NoCurrentExceptionError


def make_failure() -> Failure:
    def inner_function() -> None:
        raise ValueError("inner problem")

    try:
        inner_function()
    except ValueError:
        return Failure()
    raise AssertionError("unreachable")


def test_captures_current_exception() -> None:
    f = make_failure()
    assert f.type is ValueError
    assert isinstance(f.value, ValueError)
    assert f.getErrorMessage() == "inner problem"
    assert f.tb is not None


def test_no_current_exception() -> None:
    with pytest.raises(NoCurrentExceptionError):
        Failure()


def test_wraps_an_exception_instance_and_its_traceback() -> None:
    err = KeyError("k")
    f = Failure(err)
    assert f.value is err and f.type is KeyError and f.tb is None
    try:
        raise err
    except KeyError as e:
        caught = e
    assert Failure(caught).tb is caught.__traceback__


def test_check_and_trap_accept_classes_and_names() -> None:
    f = Failure(KeyError("k"))
    assert f.check(IndexError, LookupError) is LookupError
    assert f.check("builtins.KeyError") == "builtins.KeyError"
    assert f.check(IndexError) is None
    assert f.trap(KeyError) is KeyError
    with pytest.raises(KeyError):
        f.trap(IndexError)


def test_raiseException_keeps_original_traceback() -> None:
    f = make_failure()
    with pytest.raises(ValueError) as info:
        f.raiseException()
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "inner_function" in names


def test_getTraceback_default_brief_verbose() -> None:
    f = make_failure()
    text = f.getTraceback()
    assert text.startswith("Traceback (most recent call last):\n")
    assert "inner_function" in text
    assert 'raise ValueError("inner problem")' in text
    assert text.endswith("builtins.ValueError: inner problem\n")
    brief = f.getBriefTraceback()
    assert brief.startswith("Traceback: ")
    assert ":inner_function\n" in brief
    verbose = f.getTraceback(detail="verbose")
    assert verbose.startswith("*--- Failure #")
    assert "Capture of Locals and Globals disabled" in verbose
    with pytest.raises(ValueError):
        f.getTraceback(detail="loud")


def test_verbose_with_captured_variables() -> None:
    def with_locals() -> None:
        secret_local = "visible"  # noqa: F841 - read through the captured frame
        raise RuntimeError("x")

    try:
        with_locals()
    except RuntimeError:
        f = Failure(captureVars=True)
    assert "secret_local : 'visible'" in f.getTraceback(detail="verbose")


def test_traceback_without_frames() -> None:
    f = Failure(ValueError("bare"))
    assert f.getTraceback() == (
        "Traceback (most recent call last):\nFailure: builtins.ValueError: bare\n")


def test_cleanFailure_lets_frames_go_but_keeps_the_story() -> None:
    class Marker:
        pass

    refs: list[weakref.ref[Marker]] = []

    def holds_marker() -> None:
        marker = Marker()
        refs.append(weakref.ref(marker))
        raise ValueError("x")

    try:
        holds_marker()
    except ValueError:
        f = Failure()
    assert refs[0]() is not None
    f.cleanFailure()
    assert f.tb is None and f.value.__traceback__ is None
    assert refs[0]() is None
    assert "holds_marker" in f.getTraceback()
    tb = f.getTracebackObject()
    assert [s.name for s in traceback.extract_tb(tb)][-1] == "holds_marker"
    formatted = "".join(traceback.format_exception(f.type, f.value, tb))
    assert "holds_marker" in formatted


def test_broken_str_does_not_break_reporting() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    f = Failure(Broken())
    assert "broken __str__" in f.getErrorMessage()
    assert "Broken" in repr(f)


def test_failure_of_failure_is_a_copy() -> None:
    f = make_failure()
    g = Failure(f)
    assert g.value is f.value and g.type is f.type


def test_throwExceptionIntoGenerator() -> None:
    def gen() -> Generator[str, None, None]:
        try:
            yield "first"
        except ValueError as e:
            yield f"caught {e}"

    g = gen()
    next(g)
    assert make_failure().throwExceptionIntoGenerator(g) == "caught inner problem"


def test_pickle_round_trip_keeps_message_and_frames() -> None:
    f = make_failure()
    g: Any = pickle.loads(pickle.dumps(f))
    assert g.pickled == 1 and g.tb is None
    assert g.check(ValueError)
    assert "inner_function" in g.getTraceback()


def test_failure_from_a_reraised_cleaned_failure_keeps_the_original_frames() -> None:
    original = make_failure()
    original.cleanFailure()

    def catcher() -> Failure:
        try:
            original.raiseException()
        except ValueError:
            return Failure()
        raise AssertionError("unreachable")

    again = catcher()
    names = [frame[0] for frame in again.frames]
    assert names[0] == "catcher"
    assert names[-1] == "inner_function"  # where it started, not where it was re-raised
    assert "_raise_cleaned" not in names
    again.cleanFailure()  # and nothing is lost when this one lets go in turn
    assert "inner_function" in again.getTraceback()


def test_cleaned_failure_thrown_into_a_generator_keeps_the_original_frames() -> None:
    original = make_failure()
    original.cleanFailure()

    def gen() -> Generator[None, None, None]:
        yield

    g = gen()
    next(g)
    try:
        original.throwExceptionIntoGenerator(g)
    except ValueError:
        thrown = Failure()
    names = [frame[0] for frame in thrown.frames]
    assert "gen" in names
    assert names[-1] == "inner_function"


def test_throwing_a_cleaned_failure_leaves_the_exception_context_alone() -> None:
    original = make_failure()
    original.cleanFailure()

    def gen() -> Generator[BaseException | None, None, None]:
        try:
            yield None
        except ValueError as e:
            yield e.__context__

    g = gen()
    next(g)
    try:
        raise KeyError("being handled by the caller")
    except KeyError:
        assert original.throwExceptionIntoGenerator(g) is None


def test_reraising_keeps_a_live_traceback_as_it_is() -> None:
    original = make_failure()  # not cleaned: the traceback itself carries the frames
    try:
        original.raiseException()
    except ValueError:
        again = Failure()
    names = [frame[0] for frame in again.frames]
    assert names.count("inner_function") == 1
    assert names[-1] == "inner_function"


def test_pickled_state_uses_twisteds_keys() -> None:
    # Code that copies failures between processes (Perspective Broker,
    # Foolscap) reads "parents" and "frames" from the state dictionary.
    f = make_failure()
    state = f.__getstate__()
    assert state["parents"] == f.parents
    assert state["frames"] == f.frames
    assert "_parents" not in state and "_frames" not in state
    g: Any = pickle.loads(pickle.dumps(f))
    assert g.parents == f.parents and g.frames == f.frames
    expected = {**f.__dict__, "tb": None, "pickled": 1}
    del expected["value"]  # exceptions compare by identity
    assert expected == {k: v for k, v in g.__dict__.items() if k != "value"}


def test_repr_and_str() -> None:
    f = Failure(KeyError("k"))
    assert repr(f) == "<deferred.failure.Failure builtins.KeyError: 'k'>"
    assert str(f).startswith("[Failure instance: Traceback")
