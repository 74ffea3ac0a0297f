"""Deferred micro-benchmarks: torsion's ``deferred`` against ``twisted.internet.defer``.

Every case is written once as ``build(defer) -> op`` where ``defer`` is the engine's
module, so both engines run byte-for-byte the same benchmark code. Names are looked up on
the module once, at build time, the way an application binds them by importing.

Reference figures for Twisted 26.10 on the issue's machine (ops/s): callbacks-3 465k,
errback-3 302k, deferredlist-100 6.1k, gather-100 5.3k, inline-10 64k, ensure-10 166k.
"""

from __future__ import annotations

import itertools
import reprlib
from collections.abc import Callable, Generator
from types import ModuleType
from typing import Any

from benchmarks._harness import (
    TARGET_RATIO,
    TWISTED_MISSING,
    Case,
    Engine,
    Op,
    Options,
    Unavailable,
    compare,
    describe,
    format_table,
    load_engine,
    select_engines,
)

DESCRIPTION = "Deferred callbacks, errbacks, DeferredList/gather, inlineCallbacks, await"
# What an engine must export to run the suite.
NAMES: tuple[str, ...] = ("Deferred", "succeed", "DeferredList", "gatherResults")
NAMES += ("inlineCallbacks", "ensureDeferred")
FANOUT = 100  # deferreds per DeferredList / gatherResults
STEPS = 10  # yields / awaits per coroutine
DEPTH = 10_000  # links in the chain case


# --- callbacks shared by the cases; plain functions so both engines call the same code ---


def _inc(value: int) -> int:
    return value + 1


def _recover(failure: Any) -> str:
    # Reading the failure proves the errback got it, without the cost of trap()'s matching.
    return "handled" if isinstance(failure.value, ValueError) else "wrong failure"


def _next(_: object, following: Any) -> Any:
    return following


# --- result checks: run once per engine before timing ---


def _expect(wanted: object) -> Callable[[object], None]:
    def check(d: object) -> None:
        box: list[object] = []
        d.addBoth(box.append)  # type: ignore[attr-defined]  # any engine's Deferred
        if box != [wanted]:
            got = reprlib.repr(box[0]) if box else "no result"
            raise AssertionError(f"expected result {reprlib.repr(wanted)}, got {got}")

    return check


# --- the cases ---


def callbacks(defer: ModuleType) -> Op:
    """(a) Deferred + 3 callbacks, fired with callback()."""
    Deferred = defer.Deferred

    def op() -> object:
        d = Deferred()
        d.addCallback(_inc)
        d.addCallback(_inc)
        d.addCallback(_inc)
        d.callback(0)
        return d

    return op


def errback(defer: ModuleType) -> Op:
    """(b) Deferred + 3 callbacks + an errback, fired with errback()."""
    Deferred = defer.Deferred

    def op() -> object:
        d = Deferred()
        d.addCallback(_inc)
        d.addCallback(_inc)
        d.addCallback(_inc)
        d.addErrback(_recover)
        # A fresh exception each time: a shared one would carry state between runs.
        d.errback(ValueError("boom"))
        return d

    return op


def deferred_list(defer: ModuleType) -> Op:
    """(c) DeferredList over 100 fresh succeed() Deferreds."""
    DeferredList, succeed = defer.DeferredList, defer.succeed

    def op() -> object:
        return DeferredList([succeed(i) for i in range(FANOUT)])

    return op


def gather(defer: ModuleType) -> Op:
    """(d) gatherResults over 100 fresh succeed() Deferreds."""
    gatherResults, succeed = defer.gatherResults, defer.succeed

    def op() -> object:
        return gatherResults([succeed(i) for i in range(FANOUT)])

    return op


def inline(defer: ModuleType) -> Op:
    """(e) inlineCallbacks generator yielding 10 fired Deferreds."""
    succeed = defer.succeed

    @defer.inlineCallbacks  # type: ignore[untyped-decorator]
    def op() -> Generator[Any, Any, int]:
        total = 0
        for i in range(STEPS):
            total += yield succeed(i)
        return total

    return op  # type: ignore[no-any-return]


def ensure(defer: ModuleType) -> Op:
    """(f) ensureDeferred of a coroutine awaiting 10 fired Deferreds."""
    ensureDeferred, succeed = defer.ensureDeferred, defer.succeed

    async def steps() -> int:
        total = 0
        for i in range(STEPS):
            total += await succeed(i)
        return total

    def op() -> object:
        return ensureDeferred(steps())

    return op


def chain(defer: ModuleType) -> Op:
    """(g) a 10,000-link chain: each callback returns the next, unfired, Deferred."""
    Deferred = defer.Deferred

    def op() -> object:
        links = [Deferred() for _ in range(DEPTH)]
        for current, following in itertools.pairwise(links):
            current.addCallback(_next, following)
        links[-1].addCallback(_inc)
        # Fire front to back: each callback returns the next, still unfired, Deferred, so
        # d0..d(N-2) all wait; firing the last one unwinds all 10,000 levels at once,
        # which is the path that must not recurse.
        for d in links:
            d.callback(0)
        return links[0]

    return op


CASES = [
    Case("callbacks-3", "new Deferred, 3 addCallback, callback()", callbacks, _expect(3)),
    Case(
        "errback-3",
        "new Deferred, 3 addCallback + addErrback, errback() passes "
        "through the callbacks to the errback, which handles it",
        errback,
        _expect("handled"),
    ),
    Case(
        "deferredlist-100",
        f"DeferredList of {FANOUT} succeed() built inside the op",
        deferred_list,
        _expect([(True, i) for i in range(FANOUT)]),
    ),
    Case(
        "gather-100",
        f"gatherResults of {FANOUT} succeed() built inside the op",
        gather,
        _expect(list(range(FANOUT))),
    ),
    Case(
        "inline-10",
        f"inlineCallbacks function yielding {STEPS} fired Deferreds",
        inline,
        _expect(sum(range(STEPS))),
    ),
    Case(
        "ensure-10",
        f"ensureDeferred of a coroutine awaiting {STEPS} fired Deferreds",
        ensure,
        _expect(sum(range(STEPS))),
    ),
    Case(
        f"chain-{DEPTH}",
        f"{DEPTH:,} Deferreds, each callback returning the next unfired one; ops are whole chains",
        chain,
        _expect(1),
        per_op=DEPTH,
        unit="link",
    ),
]


#: What ``--engines`` matches each engine by: torsion's Deferred is the same on every backend.
TAGS = {"torsion": {"torsion", "select", "asyncio", "uvloop"}, "twisted": {"twisted"}}


def _engines(options: Options) -> tuple[list[Engine], dict[str, str]]:
    names, skipped = select_engines("deferred", list(TAGS), list(TAGS), options,
                                    requires={"twisted": ("twisted",)}, tags=TAGS.__getitem__)
    engines = []
    if "torsion" in names:
        module = options.torsion_module or "deferred"
        try:
            engines.append(load_engine("torsion", module, NAMES))
        except ImportError as exc:
            raise Unavailable(
                f"torsion's deferred package is not usable ({exc}). Run from the repository "
                "root, or try the harness alone with --torsion-module twisted.internet.defer"
            ) from exc
    if "twisted" in names:
        try:
            engines.append(load_engine("twisted", "twisted.internet.defer", NAMES))
        except ImportError as exc:
            skipped["twisted"] = f"{exc} ({TWISTED_MISSING})"
    return engines, skipped


def run(options: Options) -> dict[str, Any]:
    """Run every case on torsion (and Twisted when importable); print the table.

    Returns:
        The suite's JSON-ready report: engines and one record per case.
    """
    engines, skipped = _engines(options)
    labels = [engine.label for engine in engines]
    if options.torsion_module:
        print(f"note: torsion slot runs {options.torsion_module} (debug comparison)")
    if not engines:
        print("deferred: skipped: --engines leaves no engine of this suite")
        return {"kind": "inprocess", "engines": {}, "cases": [], "skipped": skipped}
    records = compare("deferred", CASES, engines, options)
    print(
        f"\ndeferred: medians of {options.repeat} repetitions, "
        f"~{options.rep_seconds:g} s each, interleaved (in-process, no server: one "
        "thread, so on a quiet machine the time per op is its CPU per op)\n"
    )
    print(format_table(records, labels))
    spreads = [(r["engines"][lb]["spread"], f"{r['name']} {lb}") for r in records
               for lb in labels if "spread" in r["engines"][lb]]
    if spreads:
        worst = max(spreads)
        middle = sorted(value for value, _ in spreads)[len(spreads) // 2]
        print(f"noise: spread (max-min)/median of ops/s over {options.repeat} repetitions: "
              f"median {middle:.1%}, worst {worst[0]:.1%} ({worst[1]})")
    for label, why in skipped.items():
        print(f"skipped {label}: {why}")
    return {"kind": "inprocess", "engines": describe(engines), "references": ["twisted"],
            "skipped": skipped, "cases": records, "targets": _verdicts(records)}


def _verdicts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 8's "Deferred at least 1.5x Twisted on every case" in the server suites'
    verdict shape: torsion's time per op over Twisted's (paired) at most 1 / 1.5."""
    limit = 1 / TARGET_RATIO
    verdicts = []
    for record in records:
        ratio = record["engines"].get("torsion", {}).get("paired_cpu", {}).get("twisted")
        verdicts.append({"case": record["name"], "engine": "torsion", "reference": "twisted",
                         "figure": "cpu", "limit": limit, "ratio": ratio,
                         "met": None if ratio is None else ratio <= limit})
    return verdicts
