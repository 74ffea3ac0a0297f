"""Measure ``deferred`` against Twisted's own tests of Deferred and Failure.

Run by hand, not by pytest (the file name keeps pytest from collecting it)::

    python tests/compat/run_twisted_defer_tests.py            # every suite
    python tests/compat/run_twisted_defer_tests.py -t         # with tracebacks
    python tests/compat/run_twisted_defer_tests.py --against-twisted   # baseline
    python tests/compat/run_twisted_defer_tests.py DeferredTests.test_cancel

What it does, at run time and without copying any of Twisted into this
repository:

1. Finds the installed Twisted's tests of these names (``SUITES``):
   ``test/test_defer.py``, ``test/test_failure.py`` and, for
   ``inlineCallbacks``/``await``/``yield from``, three modules of
   ``internet/test``.
2. Copies them into a temporary package, rewriting only their ``import``
   statements (found with ``ast``, so formatting does not matter):
   ``twisted.internet.defer`` resolves to a stand-in module holding our
   ``deferred`` names, ``twisted.python.failure`` to ``deferred.failure``, and
   ``twisted.trial.unittest`` to a stand-in whose test cases understand our
   Deferreds (below), and ``twisted.internet.task`` to Twisted's own but for
   ``deferLater``, which returns one of our Deferreds. Everything else, e.g.
   ``task.Clock`` (only a clock with ``callLater``), stays Twisted's.
3. Runs them with trial's runner in this process and prints the counts and
   the id of every test that did not pass, with its error in one line.

The shims, and why each is needed:

- ``successResultOf``/``failureResultOf``/``assertNoResult``: trial's
  versions pass the Deferred through Twisted's ``ensureDeferred`` (which
  rejects anything but Twisted's Deferred) and test results against Twisted's
  Failure class. The stand-in ``SynchronousTestCase`` re-implements the three
  (a few lines each) over our ``ensureDeferred`` and ``Failure``.
- Async test methods: trial's ``TestCase`` waits on a returned Deferred only
  if it is Twisted's; otherwise the test would "pass" before it ran. The
  stand-in ``TestCase`` hands trial a Twisted Deferred that follows ours.
- Logging: ``deferred`` reports unhandled errors (and canceller errors) on
  the stdlib logger ``deferred``; trial watches Twisted's log. While the
  suite runs, a logging handler forwards each record from that logger to
  ``twisted.python.log`` (records with an exception as ``log.err`` of a
  Twisted Failure), so ``flushLoggedErrors`` and trial's "logged errors"
  check see exactly what we log. Tests that add Twisted log observers see
  the same events.
- ``DeferredFilesystemLock`` is outside our scope: its tests are skipped.
- ``hamcrest`` and ``cython_test_exception_raiser``, when not installed, get
  minimal stand-ins (``raiser = None`` makes the test that needs it skip).

``--against-twisted`` applies only those last two stand-ins and runs the
copies against Twisted itself: the ceiling the harness can show (all pass
but the one needing the Cython extension).
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import inspect
import io
import logging
import os
import shutil
import sys
import tempfile
import types
import unittest as pyunit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Twisted's tests of the names ``deferred`` provides, relative to the
# ``twisted`` package.
SUITES = (
    "test/test_defer.py",
    "test/test_failure.py",
    "internet/test/test_inlinecb.py",
    "internet/test/test_defer_await.py",
    "internet/test/test_defer_yieldfrom.py",
)
PACKAGE = "twisted_suite"

DEFER_SHIM = "_torsion_compat_defer"
TRIAL_SHIM = "_torsion_compat_trial"
TASK_SHIM = "_torsion_compat_task"
HAMCREST_SHIM = "_torsion_compat_hamcrest"
RAISER_SHIM = "_torsion_compat_raiser"


# -- rewriting imports -----------------------------------------------------------


def _module_map(against_twisted: bool) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """(module -> replacement, (package, submodule) -> replacement) for this run."""
    modules: dict[str, str] = {}
    submodules: dict[tuple[str, str], str] = {}
    if not against_twisted:
        modules["twisted.internet.defer"] = DEFER_SHIM
        modules["twisted.python.failure"] = "deferred.failure"
        modules["twisted.trial.unittest"] = TRIAL_SHIM
        modules["twisted.internet.task"] = TASK_SHIM
        submodules["twisted.internet", "defer"] = DEFER_SHIM
        submodules["twisted.python", "failure"] = "deferred.failure"
        submodules["twisted.trial", "unittest"] = TRIAL_SHIM
        submodules["twisted.internet", "task"] = TASK_SHIM
    if importlib.util.find_spec("hamcrest") is None:
        modules["hamcrest"] = HAMCREST_SHIM
    if importlib.util.find_spec("cython_test_exception_raiser") is None:
        modules["cython_test_exception_raiser"] = RAISER_SHIM
    return modules, submodules


def _alias(alias: ast.alias) -> str:
    return alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"


def _rewrite_import(
    node: ast.Import | ast.ImportFrom,
    modules: dict[str, str],
    submodules: dict[tuple[str, str], str],
) -> list[str] | None:
    """Replacement statements for one import, or None to keep it as it is."""
    if isinstance(node, ast.Import):
        out: list[str] = []
        changed = False
        for alias in node.names:
            target = modules.get(alias.name)
            if target is None:
                out.append(f"import {_alias(alias)}")
            else:
                changed = True
                out.append(f"import {target} as {alias.asname or alias.name.split('.')[-1]}")
        return out if changed else None
    if node.level or node.module is None:
        return None
    if node.module in modules:
        names = ", ".join(_alias(a) for a in node.names)
        return [f"from {modules[node.module]} import ({names})"]
    kept: list[str] = []
    out = []
    for alias in node.names:
        target = submodules.get((node.module, alias.name))
        if target is None:
            kept.append(_alias(alias))
        else:
            out.append(f"import {target} as {alias.asname or alias.name}")
    if not out:
        return None
    if kept:
        out.insert(0, f"from {node.module} import {', '.join(kept)}")
    return out


def rewrite_source(source: str, against_twisted: bool) -> tuple[str, list[str]]:
    """The test module with its imports redirected, and notes on what changed."""
    modules, submodules = _module_map(against_twisted)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, list[str], int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            new = _rewrite_import(node, modules, submodules)
            if new is not None:
                assert node.end_lineno is not None
                edits.append((node.lineno - 1, node.end_lineno, new, node.col_offset))
    notes = []
    for start, end, new, indent in sorted(edits, reverse=True):
        old = " ".join(line.strip() for line in lines[start:end])
        pad = " " * indent
        # Joined with ";" so that line numbers in tracebacks stay those of
        # the original file.
        lines[start:end] = [pad + "; ".join(new) + "\n"] + ["\n"] * (end - start - 1)
        notes.append(f"  {old}\n    -> {'; '.join(new)}")
    return "".join(lines), notes[::-1]


# -- the stand-in modules ----------------------------------------------------------


def _install_shims() -> None:
    """Register the stand-in modules the rewritten tests import."""
    from twisted.internet import defer as tx_defer
    from twisted.python import failure as tx_failure
    from twisted.trial import unittest as trial

    import deferred
    import deferred.combinators

    # twisted.internet.defer -> deferred, plus the typing helpers the tests
    # import by their private names (ours have the same meaning).
    defer = types.ModuleType(DEFER_SHIM, "twisted.internet.defer names, from deferred")
    for name in deferred.__all__:
        setattr(defer, name, getattr(deferred, name))
    defer._T = deferred.combinators._T  # type: ignore[attr-defined]
    for name in ("_DeferredListResultListT", "_DeferredListSingleResultT"):
        setattr(defer, name, getattr(deferred.combinators, name))

    class DeferredFilesystemLock:
        """Out of scope for ``deferred``: its tests are skipped."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            raise pyunit.SkipTest("DeferredFilesystemLock is outside deferred's scope")

    defer.DeferredFilesystemLock = DeferredFilesystemLock  # type: ignore[attr-defined]
    sys.modules[DEFER_SHIM] = defer

    def to_twisted(result: object) -> object:
        """A Twisted Deferred following one of ours; anything else unchanged."""
        if not isinstance(result, deferred.Deferred):
            return result
        theirs: Any = tx_defer.Deferred()

        def failed(f: deferred.Failure) -> None:
            # Only a real traceback: trial may re-raise the exception.
            theirs.errback(tx_failure.Failure(f.value, f.type, f.tb))

        result.addCallbacks(theirs.callback, failed)
        return theirs

    class ResultHelpers:
        """trial's synchronous result helpers, over our Deferred and Failure."""

        def _currentResult(self, d: Any) -> list[Any]:
            seen: list[Any] = []
            deferred.ensureDeferred(d).addBoth(seen.append)
            return seen

        def successResultOf(self, d: Any) -> Any:
            seen = self._currentResult(d)
            if not seen:
                self.fail(f"{d!r} has no result yet; a success was expected")
            if isinstance(seen[0], deferred.Failure):
                self.fail(f"{d!r} failed; a success was expected:\n"
                          f"{seen[0].getTraceback()}")
            return seen[0]

        def failureResultOf(self, d: Any, *expected: type[BaseException]) -> Any:
            seen = self._currentResult(d)
            if not seen:
                self.fail(f"{d!r} has no result yet; a failure was expected")
            f = seen[0]
            if not isinstance(f, deferred.Failure):
                self.fail(f"{d!r} succeeded with {f!r}; a failure was expected")
            if expected and not f.check(*expected):
                self.fail(f"{d!r} failed with {f.type!r}, not one of {expected}:\n"
                          f"{f.getTraceback()}")
            return f

        # ``self.fail`` is trial's: these are mixed into its test cases.

        def assertNoResult(self, d: Any) -> None:
            seen: list[Any] = []

            def look(result: object) -> object:
                seen.append(result)
                return result

            d = deferred.ensureDeferred(d)
            d.addBoth(look)
            if seen:
                d.addErrback(lambda _: None)
                self.fail(f"{d!r} already has a result, {seen[0]!r}; none was expected")

    class SynchronousTestCase(ResultHelpers, trial.SynchronousTestCase):
        pass

    class TestCase(ResultHelpers, trial.TestCase):
        def _run(self, func: Callable[[], object], description: str, result: Any) -> Any:
            if inspect.isgeneratorfunction(func):
                return super()._run(func, description, result)

            @functools.wraps(func)
            def bridged() -> object:
                return to_twisted(func())

            return super()._run(bridged, description, result)

    trial_shim = types.ModuleType(TRIAL_SHIM, "twisted.trial.unittest, Deferred-aware")
    trial_shim.__dict__.update(
        {k: v for k, v in vars(trial).items() if not k.startswith("__")})
    trial_shim.SynchronousTestCase = SynchronousTestCase  # type: ignore[attr-defined]
    trial_shim.TestCase = TestCase  # type: ignore[attr-defined]
    sys.modules[TRIAL_SHIM] = trial_shim

    # twisted.internet.task stays Twisted's (Clock is only a clock), except
    # deferLater, which must return one of our Deferreds to be waited on.
    from twisted.internet import task as tx_task

    def deferLater(clock: Any, delay: float, callable: Any = None,
                   *args: object, **kw: object) -> Any:
        d = deferred.Deferred(lambda _: call.cancel())
        call = clock.callLater(delay, d.callback, None)
        if callable is not None:
            d.addCallback(lambda _: callable(*args, **kw))
        return d

    task_shim = types.ModuleType(TASK_SHIM, "twisted.internet.task, with our deferLater")
    task_shim.__dict__.update(
        {k: v for k, v in vars(tx_task).items() if not k.startswith("__")})
    task_shim.deferLater = deferLater  # type: ignore[attr-defined]
    sys.modules[TASK_SHIM] = task_shim

    sys.modules[HAMCREST_SHIM] = _hamcrest_shim()
    raiser = types.ModuleType(RAISER_SHIM)
    raiser.raiser = None  # type: ignore[attr-defined]
    sys.modules[RAISER_SHIM] = raiser


def _hamcrest_shim() -> types.ModuleType:
    """The three hamcrest names the tests use, for when hamcrest is missing."""

    class Matcher:
        def __init__(self, check: Callable[[Any], bool], description: str) -> None:
            self.check = check
            self.description = description

    def equal_to(expected: object) -> Matcher:
        return Matcher(lambda actual: bool(actual == expected), f"equal to {expected!r}")

    def empty() -> Matcher:
        return Matcher(lambda actual: len(actual) == 0, "empty")

    def assert_that(actual: object, matcher: Matcher, reason: str = "") -> None:
        if not matcher.check(actual):
            raise AssertionError(f"{reason}\nExpected: {matcher.description}\n"
                                 f"     but: was {actual!r}")

    module = types.ModuleType(HAMCREST_SHIM)
    module.__dict__.update(assert_that=assert_that, equal_to=equal_to, empty=empty)
    return module


class _ToTwistedLog(logging.Handler):
    """Forwards records of logger ``deferred`` to Twisted's log, where trial looks."""

    def emit(self, record: logging.LogRecord) -> None:
        from twisted.python import failure as tx_failure
        from twisted.python import log as tx_log

        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                # The traceback may be our stand-in for a cleaned one; Twisted's
                # Failure reads it the same way.
                etype, value, tb = record.exc_info
                tx_log.err(tx_failure.Failure(value, etype, tb), message)
            else:
                tx_log.msg(message, isError=record.levelno >= logging.ERROR)
        except Exception:
            self.handleError(record)


# -- running ---------------------------------------------------------------------


def _iter_tests(suite: Any) -> Iterator[Any]:
    if isinstance(suite, pyunit.TestCase):
        yield suite
        return
    for test in suite:
        yield from _iter_tests(test)


def _one_line(error: Any) -> str:
    value = getattr(error, "value", None)
    if value is None and isinstance(error, tuple):
        value = error[1]
    if value is None:
        return ""
    text = str(value).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(value).__name__}: {first}"[:160]


def _short_id(test: Any) -> str:
    return str(test.id()).removeprefix(PACKAGE + ".")


def run(args: argparse.Namespace) -> int:
    try:
        import twisted
        from twisted.trial import reporter, runner
    except ImportError:
        print("Twisted is not installed: nothing to measure (pip install twisted).")
        return 0

    sys.path.insert(0, str(REPO))
    twisted_dir = Path(twisted.__file__).parent
    workdir = Path(tempfile.mkdtemp(prefix="torsion-twisted-"))
    package = workdir / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    print(f"Twisted {twisted.__version__}: {twisted_dir}")
    print(f"deferred from {REPO / 'deferred'}"
          + ("  (NOT used: --against-twisted)" if args.against_twisted else ""))
    found = []
    for relative in SUITES:
        path = twisted_dir / relative
        if not path.exists():
            print(f"  {path} not found: skipped")
            continue
        text, notes = rewrite_source(path.read_text(), args.against_twisted)
        name = path.stem
        (package / path.name).write_text(text)
        found.append(name)
        if args.show_rewrites:
            print(f"{relative} imports rewritten:")
            print("\n".join(notes))
    sys.path.insert(0, str(workdir))

    _install_shims()
    bridge = _ToTwistedLog()
    logger = logging.getLogger("deferred")
    propagate = logger.propagate
    logger.addHandler(bridge)
    logger.propagate = False  # the bridge reports it; no stderr noise as well

    loader = runner.TestLoader()
    suite = pyunit.TestSuite()
    for name in found:
        module = importlib.import_module(f"{PACKAGE}.{name}")
        for test in _iter_tests(loader.loadModule(module)):
            if not args.only or any(pattern in test.id() for pattern in args.only):
                suite.addTest(test)

    stream = io.StringIO()
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        trial_runner = runner.TrialRunner(
            reporter.Reporter, stream=stream,
            workingDirectory=str(workdir / "_trial_temp"),
            forceGarbageCollection=not args.no_force_gc,
        )
        result: Any = trial_runner.run(suite)
    finally:
        os.chdir(cwd)
        logger.removeHandler(bridge)
        logger.propagate = propagate
        if args.keep:
            print(f"rewritten modules kept in {package}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    bad = ([("FAIL", t, e) for t, e in result.failures]
           + [("ERROR", t, e) for t, e in result.errors]
           + [("UNEXPECTED SUCCESS", t, e) for t, e in result.unexpectedSuccesses])
    bad.sort(key=lambda item: _short_id(item[1]))
    if args.tracebacks:
        print(stream.getvalue())
    print()
    for kind, test, error in bad:
        print(f"{kind:5} {_short_id(test)}")
        line = _one_line(error)
        if line:
            print(f"      {line}")
    # trial may report one test more than once (a failed assertion, then the
    # errors it logged), so the headline counts tests, not reports.
    not_passing = {_short_id(test) for _, test, _ in bad}
    skipped = len(result.skips)
    expected_failures = len(result.expectedFailures)
    passed = result.testsRun - len(not_passing) - skipped - expected_failures
    print()
    print(f"ran {result.testsRun}: passed {passed}, not passing {len(not_passing)}, "
          f"skipped {skipped}, expected failures {expected_failures}")
    print(f"  (trial's reports: {len(result.failures)} failures, {len(result.errors)} errors, "
          f"{len(result.unexpectedSuccesses)} unexpected successes)")
    if args.list_skips:
        for test, reason in result.skips:
            print(f"SKIP  {_short_id(test)}: {reason}")
    return 0 if not bad else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("only", nargs="*",
                        help="run only tests whose id contains one of these")
    parser.add_argument("-t", "--tracebacks", action="store_true",
                        help="print trial's full report (tracebacks)")
    parser.add_argument("--against-twisted", action="store_true",
                        help="run the copies against Twisted itself (baseline)")
    parser.add_argument("--show-rewrites", action="store_true",
                        help="print every rewritten import")
    parser.add_argument("--list-skips", action="store_true", help="list skipped tests")
    parser.add_argument("--keep", action="store_true", help="keep the rewritten copies")
    parser.add_argument("--no-force-gc", action="store_true",
                        help="do not collect garbage after every test (trial's --force-gc)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
