"""Random callback chains against a small reference model of Deferred semantics.

Each chain is a list of steps: (which side it runs on, what it does). The
model folds the steps over a ("ok", value) / ("err", code) state; the real
Deferred runs them, with inner Deferreds fired in an order hypothesis picks,
and steps added before and after the first firing. Both must agree.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from deferred import Deferred, Failure, fail, succeed


class ModelError(Exception):
    """The only error these chains raise; ``args[0]`` is its code."""


SIDES = ("callback", "errback", "both")
ACTIONS = (
    "add",            # return the value plus k (or, on a failure, k)
    "raise",          # raise ModelError(k)
    "return_failure",  # return Failure(ModelError(k))
    "fired_ok",       # return succeed(result of "add")
    "fired_err",      # return fail(ModelError(k))
    "later_ok",       # return an unfired Deferred, later fired with "add"
    "later_err",      # return an unfired Deferred, later failed with ModelError(k)
)

steps_strategy = st.lists(
    st.tuples(st.sampled_from(SIDES), st.sampled_from(ACTIONS), st.integers(0, 9)),
    max_size=12,
)
State = tuple[str, int]


def model(start: State, steps: list[tuple[str, str, int]]) -> State:
    state = start
    for side, action, k in steps:
        kind, value = state
        runs = side == "both" or (side == "callback") == (kind == "ok")
        if not runs:
            continue
        base = value + k if kind == "ok" else k
        if action in ("add", "fired_ok", "later_ok"):
            state = ("ok", base)
        else:
            state = ("err", k)
    return state


def build_step(action: str, k: int, pending: list[tuple[Deferred[Any], State]]) -> Any:
    def step(result: Any) -> Any:
        base = result + k if not isinstance(result, Failure) else k
        if action == "add":
            return base
        if action == "raise":
            raise ModelError(k)
        if action == "return_failure":
            return Failure(ModelError(k))
        if action == "fired_ok":
            return succeed(base)
        if action == "fired_err":
            return fail(ModelError(k))
        d: Deferred[Any] = Deferred()
        pending.append((d, ("ok", base) if action == "later_ok" else ("err", k)))
        return d

    return step


def add_step(d: Deferred[Any], side: str, action: str, k: int,
             pending: list[tuple[Deferred[Any], State]]) -> None:
    fn = build_step(action, k, pending)
    if side == "callback":
        d.addCallback(fn)
    elif side == "errback":
        d.addErrback(fn)
    else:
        d.addBoth(fn)


def fire(d: Deferred[Any], state: State) -> None:
    if state[0] == "ok":
        d.callback(state[1])
    else:
        d.errback(ModelError(state[1]))


def observed(d: Deferred[Any]) -> State | None:
    out: list[Any] = []
    d.addBoth(lambda r: out.append(r))  # consumes the result: nothing left unhandled
    if not out:
        return None
    r = out[0]
    if isinstance(r, Failure):
        assert r.check(ModelError), r.getTraceback()
        return ("err", r.value.args[0])
    return ("ok", r)


@settings(max_examples=300, deadline=None)
@given(
    start=st.tuples(st.sampled_from(["ok", "err"]), st.integers(0, 9)),
    steps=steps_strategy,
    split=st.integers(0, 12),
    data=st.data(),
)
def test_random_chains_match_the_model(start: State, steps: list[tuple[str, str, int]],
                                       split: int, data: st.DataObject) -> None:
    pending: list[tuple[Deferred[Any], State]] = []
    d: Deferred[Any] = Deferred()
    for side, action, k in steps[:split]:
        add_step(d, side, action, k, pending)
    fire(d, start)
    for side, action, k in steps[split:]:
        add_step(d, side, action, k, pending)
    # Fire inner Deferreds in an order of hypothesis' choosing; each firing
    # may create new ones further down the chain.
    while pending:
        index = data.draw(st.integers(0, len(pending) - 1), label="fire")
        inner, outcome = pending.pop(index)
        fire(inner, outcome)
    assert observed(d) == model(start, steps)


@settings(max_examples=100, deadline=None)
@given(start=st.tuples(st.sampled_from(["ok", "err"]), st.integers(0, 9)),
       steps=steps_strategy)
def test_chain_is_pending_exactly_while_an_inner_deferred_is(
        start: State, steps: list[tuple[str, str, int]]) -> None:
    pending: list[tuple[Deferred[Any], State]] = []
    d: Deferred[Any] = Deferred()
    for side, action, k in steps:
        add_step(d, side, action, k, pending)
    fire(d, start)
    while pending:
        # Waiting on an unfired inner Deferred (checked without adding a step).
        assert d.paused and isinstance(d.result, Deferred)
        inner, outcome = pending.pop(0)
        fire(inner, outcome)
    assert observed(d) == model(start, steps)
