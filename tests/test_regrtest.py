"""CPython's own regression tests, run under a live consumer: an enabled
marker never changes what the traced program does.

For each build, the modules of cpython_tests.MODULES (the machinery the
markers touch, and fork and exec) run untraced, once per build: the
baseline.  Then once per consumer configuration, one test each
(test_regrtest[python3.13-all]): a bpftrace script counting the hits of
every marker the build has ("all"; cpython_tests.py also runs each family
alone, by hand: "function", "cfunction", "line").  Every test's outcome, every module's
and regrtest's own result must be the baseline's, but for the differences
ACCEPTED lists; and the consumer must have counted hits of each marker it
attached to, so that a consumer that silently did not attach fails.

The runs go in the background, RUNS_AT_ONCE at a time (on two cores: a run
is single-threaded and spends much of its time asleep in threading,
subprocess and multiprocessing tests), never two of the same build at once:
a -shared build's consumer is system-wide, and its semaphores are set in
every process of that build.  The summary at the end of pytest's output
gives each run's time, outcomes and consumer hits.
"""

import os
import re
import shutil
import tempfile
import threading
import time
import types
import warnings

import pytest

import cpython_tests
import consumers
import harness
from cpython_tests import UNTRACED

# The differences from the untraced run that are not the markers changing
# what the program does: {(consumer configuration, test id): (reason, a
# check of the test's failure report, the series it applies to)}.  Nothing
# else may differ.  A test whose subtests all differ here loses its own
# status line (unittest prints none after a failed subtest), and its module
# and regrtest's result fail: those follow, and are accepted with it.
#
# Each is upstream's behaviour under the same instrumentation without any
# marker: the first two are tests of the specializing interpreter that pass
# only if a given instruction specialized, and instrumented instructions do
# not specialize, whoever instruments them (sys.setprofile and
# sys.settrace, a sys.monitoring tool, or a consumer's markers:
# docs/markers.md); the last two are 3.14 tests of BRANCH events that fail
# whenever LINE events are on too (sys.settrace alone shows both failures,
# with the same reports).


def report_says(pattern):
    """A check: the failure report holds a line matching pattern."""
    def check(report):
        return any(re.search(pattern, line) for line in report)
    check.pattern = pattern
    return check


STOP_ITERATION = (
    "The STOP_ITERATION event of a generator that a for loop exhausts comes only "
    "from the specialized FOR_ITER_GEN (gh-116090: the generic FOR_ITER skips the "
    "END_FOR that reports it; upstream 3.14 changed the test, gh-120697).  Under "
    "LINE instrumentation (a line consumer, sys.settrace, or a sys.monitoring LINE "
    "tool, the same without markers) the loop's FOR_ITER does not specialize",
    report_says(r"^AssertionError: Lists differ: \[\] != \[\('raise', <class 'StopIteration'>\)\]$"),
    ("python3.13",))
SHIM_FRAME = (
    "The test needs a CALL specialized to CALL_ALLOC_AND_ENTER_INIT; a cfunction "
    "consumer instruments every CALL, as sys.setprofile does, and an instrumented "
    "CALL does not specialize",
    report_says(r"^AssertionError: 'CALL_ALLOC_AND_ENTER_INIT' not found in \["),
    ("python3.13", "python3.14"))
BRANCH_SOURCE = (
    "Under LINE instrumentation, the BRANCH_LEFT event of an async for loop's "
    "exit reports a source offset that code.co_branches() does not list; the "
    "test checks every branch event against co_branches()",
    report_says(r"^AssertionError: \(\d+, \d+\) not found in \{\(\d+, \d+\)\}$"),
    ("python3.14",))
DISABLE_BRANCH = (
    "Under LINE instrumentation, a tool's callback that returns DISABLE for "
    "BRANCH_LEFT or BRANCH_RIGHT keeps being called: the test counts 5 calls "
    "where it expects fewer than 4",
    report_says(r"^AssertionError: \d+ not less than 4$"),
    ("python3.14",))
ACCEPTED = {
    ("line", "test.test_monitoring.ExceptionMonitoringTest.test_implicit_stop_iteration"):
        STOP_ITERATION,
    ("all", "test.test_monitoring.ExceptionMonitoringTest.test_implicit_stop_iteration"):
        STOP_ITERATION,
    ("cfunction", "test.test_monitoring.ExceptionMonitoringTest.test_no_unwind_for_shim_frame"):
        SHIM_FRAME,
    ("all", "test.test_monitoring.ExceptionMonitoringTest.test_no_unwind_for_shim_frame"):
        SHIM_FRAME,
    ("line", "test.test_monitoring.TestBranchConsistency.test_async_for"): BRANCH_SOURCE,
    ("all", "test.test_monitoring.TestBranchConsistency.test_async_for"): BRANCH_SOURCE,
    ("line", "test.test_monitoring.TestDisable.test_disable_legal_events"): DISABLE_BRANCH,
    ("all", "test.test_monitoring.TestDisable.test_disable_legal_events"): DISABLE_BRANCH,
}


# With usdtmon (B+usdtmon), beside ACCEPTED: [(test id pattern, reason, a
# check of the failure report)].  Each is upstream's behaviour with any
# sys.monitoring tool in the process that monitors the same events, which
# usdtmon is while a consumer is attached (checked by hand with a plain
# Python tool registered from sitecustomize: the same failures, the same
# reports); docs/usdtmon.md lists them.
OTHER_TOOL = ("test_monitoring's setUp requires that no other sys.monitoring tool has "
              "events on in the process; usdtmon holds tool 4 with events while traced")
PROFILER_UNDER_CALL = (
    "a profile function set while another tool monitors CALL and C_RETURN gets the "
    "C_RETURN of the very sys.setprofile() call that set it (CPython dispatches an "
    "instrumented call's C_RETURN to every tool active when it returns): profile.py's "
    "'Bad return', test_sys_setprofile's extra c_return")
REGISTER_AUDITED = ("usdtmon registers its callbacks with sys.monitoring.register_callback "
                    "when a consumer comes, which raises the audit event "
                    "sys.monitoring.register_callback that the program's audit hooks see")
MODULE_ACCEPTED = [
    (r"^test\.test_monitoring\.", OTHER_TOOL,
     report_says(r"self\.assertEqual\(sys\.monitoring\.get_events\(tool\), 0\)")),
    (r"^test\.test_profile\.ProfileTest\.", PROFILER_UNDER_CALL,
     report_says(r"^AssertionError: \('Bad return', \('profile', 0, ")),
    (r"^test\.test_sys_setprofile\.TestEdgeCases\.test_method_with_c_function$",
     PROFILER_UNDER_CALL, report_says(r"\['c_return', 'c_call', 'c_return', 'c_call'\]")),
    (r"^test\.test_audit\.AuditTest\.test_sys_(getframemodulename|monitoring_register_callback)$",
     REGISTER_AUDITED, report_says(r"\('sys\.monitoring\.register_callback', ")),
]


def accepted_for(build, config):
    """The test ids ACCEPTED lists for this build's series and config."""
    series = harness.series_of(build)
    return sorted(t for (c, t), entry in ACCEPTED.items() if c == config and series in entry[2])


# Three at once: the runs are single-threaded and spend much of their time
# asleep (threading, subprocess and multiprocessing tests).
RUNS_AT_ONCE = int(os.environ.get("REGRTEST_RUNS_AT_ONCE", "3"))

# Each series' own build, and 3.14's free-threaded one; not the -shared
# builds (the same interpreter loop as their series' own build, the
# markers in libpython), the tier-2 ones (the optimizer's traces, which
# the same tests rarely reach) nor 3.13's free-threaded one (the same
# variant one release earlier): bpftrace traces all of those on every
# fixture (test_semantics.py, test_fork.py).  And our 3.14 with usdtmon
# loaded in every process and firing every family, held to python3.14's
# untraced run.  (docs/testing.md, "The matrix": CI's time.)
REGRTEST_BUILDS = [b for b in harness.builds()
                   if b == harness.series_of(b) or b == "python3.14-ft"]
CASES = [(build, config) for build in REGRTEST_BUILDS for config in cpython_tests.configs(build)]
if "python3.14" in harness.builds():
    CASES.append(("python3.14+" + harness.MODULE, "all"))


class Runs(object):
    """The regrtest runs the selected tests need, RUNS_AT_ONCE at a time in
    background threads, one at a time per build (its baseline first)."""

    def __init__(self, wanted, top):
        self.top = top
        self.queues = {}
        for build, config in wanted:
            # The untraced run of the interpreter, without usdtmon.
            self.queues.setdefault(harness.host_of(build), [UNTRACED])
            queue = self.queues.setdefault(build, [])
            if config not in queue:
                queue.append(config)
        self.order = [b for b in harness.builds() if b in self.queues]
        self.order += sorted(b for b in self.queues if b not in self.order)
        self.busy, self.done, self.running = set(), {}, {}
        self.stopped = False
        self.failing = set()                # the tests that failed: keep the outputs
        self.cond = threading.Condition()
        self.started = time.time()
        self.threads = [threading.Thread(target=self._work, daemon=True)
                        for _ in range(RUNS_AT_ONCE)]
        for t in self.threads:
            t.start()

    def _next(self):
        """The next (build, config): from the idle build with the most runs
        left."""
        idle = [b for b in self.order if b not in self.busy and self.queues[b]]
        if not idle:
            return None
        build = max(idle, key=lambda b: (len(self.queues[b]), -self.order.index(b)))
        self.busy.add(build)
        return build, self.queues[build].pop(0)

    def _work(self):
        while True:
            with self.cond:
                job = self._next()
                while job is None:
                    if self.stopped or not any(self.queues.values()):
                        return
                    self.cond.wait()
                    job = self._next()
            build, config = job
            run = cpython_tests.Run(build, config, os.path.join(self.top, build, config))
            with self.cond:
                self.running[job] = run
            try:
                if not self.stopped:
                    run.go()
                else:
                    run.error = "stopped"
            except Exception as e:          # reported by the test that wants it
                run.error = "%s: %s" % (type(e).__name__, e)
            with self.cond:
                del self.running[job]
                self.done[job] = run
                self.busy.discard(build)
                self.cond.notify_all()

    def result(self, build, config):
        with self.cond:
            while (build, config) not in self.done:
                self.cond.wait()
            return self.done[(build, config)]

    def stop(self):
        with self.cond:
            self.stopped = True
            for run in self.running.values():
                run.kill()
            self.cond.notify_all()


class Report(object):
    """pytest's terminal summary: every run's time and counts."""

    def __init__(self, runs):
        self.runs = runs

    def pytest_terminal_summary(self, terminalreporter):
        runs = self.runs
        if not runs.done:
            return
        tr = terminalreporter
        tr.section("CPython's regression tests (tests/test_regrtest.py)")
        for build in runs.order:
            for config in ([] if harness.is_module(build) else [UNTRACED]) + \
                    cpython_tests.configs(build):
                run = runs.done.get((build, config))
                if run is not None and run.seconds is not None:
                    for line in run.summary().splitlines():
                        tr.write_line(line)
        total = sum(run.seconds or 0 for run in runs.done.values())
        tr.write_line("%d runs, %.0f s of runs in %.0f s, %d at once; outputs: %s" % (
            len(runs.done), total, runs.finished - runs.started, RUNS_AT_ONCE,
            runs.top if os.path.isdir(runs.top) else "removed (no failure)"))


@pytest.fixture(scope="module")
def runs(request):
    """Start every run the selected tests of this module need."""
    if consumers.Bpftrace().unavailable():
        yield None                          # each test skips or fails
        return
    wanted = [item.callspec.params["case"] for item in request.session.items
              if getattr(item, "module", None) is request.module
              and hasattr(item, "callspec") and "case" in item.callspec.params]
    top = tempfile.mkdtemp(prefix="pst-regrtest-", dir="/tmp")
    runs = Runs(wanted, top)
    request.config.pluginmanager.register(Report(runs), "regrtest-report")
    try:
        yield runs
    finally:
        runs.stop()
        runs.finished = time.time()
        if not runs.failing:
            shutil.rmtree(top, ignore_errors=True)


def accepted(build, config, traced, diffs):
    """Split diffs into (accepted, not accepted), by ACCEPTED."""
    reports = cpython_tests.tracebacks(traced.lines)
    mine = accepted_for(build, config)
    ok = []
    for d in diffs:
        entry = ACCEPTED.get((config, d[1])) if d[0] == "test" and d[1] in mine else None
        if entry and d[3] in ("FAIL", "ERROR") and entry[1](reports.get(d[1], [])):
            ok.append(d)
        elif d[0] == "test" and d[3] in ("FAIL", "ERROR") and harness.is_module(build) and any(
                re.match(pattern, d[1]) and check(reports.get(d[1]) or reports.get(
                    re.sub(r" #\d+$", "", d[1]), []))
                for pattern, _, check in MODULE_ACCEPTED):
            # (a test that runs twice, in two modules, is "NAME #2" the second time)
            ok.append(d)
    tests = [d for d in diffs if d[0] == "test"]
    for d in tests:
        # A test whose subtests failed, each accepted, says nothing itself.
        subtests = [t for t in tests if t[1].startswith(d[1] + " (") or t[1].startswith(d[1] + " [")]
        if d[3] == "no status" and subtests and all(t in ok for t in subtests):
            ok.append(d)
    def module_tests(name):
        """The differing tests of module name: by id, or run in its part
        of the output (test_cprofile runs test_profile's ProfileTest)."""
        starts = getattr(traced, "module_lines", {})
        where = getattr(traced, "test_lines", {})
        start = starts.get(name)
        ends = sorted(v for v in starts.values() if start is not None and v > start)
        end = ends[0] if ends else len(getattr(traced, "lines", []))
        return [t for t in tests if t[1].startswith("test.%s." % name) or (
            start is not None and any(start <= a < end for a, _ in where.get(t[1], [])))]

    for d in diffs:
        # The failure of a module whose every differing test is accepted
        mine = module_tests(d[1])
        if (d[0] == "module" and re.match(r"failed \(\d+ (failure|error)", d[3])
                and mine and all(t in ok for t in mine)):
            ok.append(d)
    modules = [d for d in diffs if d[0] == "module"]
    for d in diffs:
        # and regrtest's FAILURE, if those modules are all it is about.
        if d[0] == "run" and d[3] == "FAILURE" and modules and all(m in ok for m in modules):
            ok.append(d)
    return [d for d in diffs if d in ok], [d for d in diffs if d not in ok]


def describe(run, diffs, limit=10):
    """The differences, then the output of the first few tests among them
    and the end of any module that died."""
    lines = []
    for kind, name, before, after in diffs:
        lines.append("  %s %s: %s -> %s" % (kind, name, before, after))
    tests = [d[1] for d in diffs if d[0] == "test"]
    for name in tests[:limit]:
        lines.append("--- %s, under %s:" % (name, run.config))
        lines += ["    " + l for l in run.excerpt(name)]
    if len(tests) > limit:
        lines.append("--- (the other %d tests' output: %s)" % (len(tests) - limit, run.out))
    for kind, name, _, after in diffs:
        if kind == "module" and name in run.module_lines and not after.startswith("failed"):
            # A module that died: the end of its output.
            start = run.module_lines[name]
            tail = run.lines[start:][-25:]
            lines.append("--- the last lines of %s's output:" % name)
            lines += ["    " + l for l in tail]
    return "\n".join(lines)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "%s-%s" % c)
def test_regrtest(case, runs, record_property):
    build, config = case
    harness.require(consumers.Bpftrace())     # skip, or fail under REQUIRE_ALL_CONSUMERS
    baseline = runs.result(harness.host_of(build), UNTRACED)
    traced = runs.result(build, config)
    record_property("seconds", round(traced.seconds or 0, 1))
    record_property("untraced_seconds", round(baseline.seconds or 0, 1))
    runs.failing.add(case)                  # until it passes: keep the outputs
    for run in (baseline, traced):
        assert not getattr(run, "error", None), "%s: %s" % (run.name, run.error)
        assert not run.timed_out, "%s: killed after %d s; %s" % (
            run.name, cpython_tests.RUN_TIMEOUT, run.out)
    assert not baseline.result.startswith("none"), (
        "the untraced run ended before its summary (%s):\n%s"
        % (baseline.out, "\n".join(baseline.lines[-30:])))
    assert len(baseline.tests) > 100, "%s: only %d tests" % (baseline.out, len(baseline.tests))

    problems = []
    if traced.consumer_error:
        problems.append(traced.consumer_error)
    attached = cpython_tests.config_markers(build, config)
    silent = [m for m in attached if not traced.counts.get(m)]
    if silent:
        problems.append("the consumer saw no hit of %s (counts: %s)" % (silent, traced.counts))
    diffs = cpython_tests.differences(baseline, traced)
    ok, bad = accepted(build, config, traced, diffs)
    if bad:
        problems.append("%d difference(s) from the untraced run (%s, %s)\n%s" % (
            len(bad), baseline.out, traced.out, describe(traced, bad)))
    same = [t for t in accepted_for(build, config)
            if traced.tests.get(t) == baseline.tests.get(t) == "ok"]
    if same:
        warnings.warn("%s under %s: %d accepted difference(s) did not occur, e.g. %s"
                      % (build, config, len(same), same[0]))
    if problems:
        pytest.fail("%s under %s: %s" % (build, config, "\n".join(problems)))
    runs.failing.discard(case)


# --- the parser and the rules, on made-up output ----------------------------------

OUTPUT_3X = """\
0:00:00 load avg: 0.10 Run 3 tests sequentially in a single process
0:00:00 load avg: 0.10 [1/3] test_a
test_one (test.test_a.T.test_one) ... ok
test_doc (test.test_a.T.test_doc)
A docstring's first line. ... ok
test_noisy (test.test_a.T.test_noisy) ... the test's own output
FAIL
test_sub (test.test_a.T.test_sub) ...
  test_sub (test.test_a.T.test_sub) (x=1) ... FAIL
tut (test.test_a.__test__)
Doctest: test.test_a.__test__.tut ... ok
test_skip (test.test_a.T.test_skip) ... skipped 'not here'

======================================================================
FAIL: test_noisy (test.test_a.T.test_noisy)
----------------------------------------------------------------------
AssertionError: 1 != 2

----------------------------------------------------------------------
Ran 5 tests in 0.1s
0:00:31 load avg: 0.10 [1/3/1] test_a failed (2 failures) in 31.0 sec
0:00:31 load avg: 0.10 [2/3/1] test_b
test_x (test.test_b.T.test_x) ... """

OUTPUT_27 = """\
Run tests sequentially
0:00:00 load avg: 0.10 [1/3] test_a
test_one (test.test_a.T) ... ok
doctest (test.test_a) ... 3 tests with zero failures
0:00:00 load avg: 0.10 [2/3] test_b
test_two (test.test_b.T) ... ERROR
0:00:31 load avg: 0.10 [3/3] test_c -- test_b failed in 31 sec
test_three (test.test_c.T) ... ok

== Tests result: FAILURE ==

2 tests OK.

1 test failed:
    test_b

Total duration: 31 sec
Tests result: FAILURE
"""


@pytest.mark.quick
def test_parse_3x_output_of_a_run_that_died():
    tests, _, modules, _, result = cpython_tests.parse(
        OUTPUT_3X.splitlines(), ["test_a", "test_b", "test_c"])
    assert tests == {
        "test.test_a.T.test_one": "ok",
        "test.test_a.T.test_doc": "ok",
        "test.test_a.T.test_noisy": "FAIL",
        "test.test_a.T.test_sub": "no status",
        "test.test_a.T.test_sub (x=1)": "FAIL",
        "test.test_a.__test__.tut": "ok",
        "test.test_a.T.test_skip": "skipped",
        "test.test_b.T.test_x": "no status",
    }
    assert modules == {"test_a": "failed (2 failures)", "test_b": "started, no result",
                       "test_c": "not run"}
    assert result.startswith("none")
    report = cpython_tests.tracebacks(OUTPUT_3X.splitlines())
    assert report["test.test_a.T.test_noisy"][-1] == "AssertionError: 1 != 2"


@pytest.mark.quick
def test_parse_27_output():
    tests, _, modules, _, result = cpython_tests.parse(
        OUTPUT_27.splitlines(), ["test_a", "test_b", "test_c"])
    assert tests == {"test.test_a.T.test_one": "ok", "test.test_a.doctest": "ok (3 doctests)",
                     "test.test_b.T.test_two": "ERROR", "test.test_c.T.test_three": "ok"}
    assert modules == {"test_a": "passed", "test_b": "failed", "test_c": "passed"}
    assert result == "FAILURE"


def parsed(text, modules):
    tests, _, mods, _, result = cpython_tests.parse(text.splitlines(), modules)
    return types.SimpleNamespace(tests=tests, modules=mods, result=result,
                                 lines=text.splitlines())


@pytest.mark.quick
def test_a_run_that_died_differs():
    """Every test and module the run did not finish is a difference."""
    died = parsed(OUTPUT_3X, ["test_a", "test_b"])
    whole = parsed(OUTPUT_3X.replace("test_x (test.test_b.T.test_x) ... ", """\
test_x (test.test_b.T.test_x) ... ok
0:00:32 load avg: 0.10 [2/3/1] test_b passed

== Tests result: FAILURE ==
"""), ["test_a", "test_b"])
    assert cpython_tests.differences(whole, died) == [
        ("run", "Tests result", "FAILURE", "none (the run ended before its summary)"),
        ("module", "test_b", "passed", "started, no result"),
        ("test", "test.test_b.T.test_x", "ok", "no status")]


SHIM_REPORT = """\
======================================================================
FAIL: test_no_unwind_for_shim_frame (test.test_monitoring.ExceptionMonitoringTest.test_no_unwind_for_shim_frame)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "test_monitoring.py", line 907, in test_no_unwind_for_shim_frame
    self.assertIn(
AssertionError: %s not found in ['COPY_FREE_VARS', 'RESUME_CHECK', 'INSTRUMENTED_CALL']

----------------------------------------------------------------------
"""


@pytest.mark.parametrize("missing, ok", [("'CALL_ALLOC_AND_ENTER_INIT'", True),
                                         ("'CALL_PY_EXACT_ARGS'", False)])
@pytest.mark.quick
def test_accepted_only_with_its_report(missing, ok):
    """An accepted difference is the test's id, the consumer configuration
    and its failure report; its module's failure and the run's follow."""
    test = "test.test_monitoring.ExceptionMonitoringTest.test_no_unwind_for_shim_frame"
    assert ("cfunction", test) in ACCEPTED
    traced = types.SimpleNamespace(lines=(SHIM_REPORT % missing).splitlines())
    diffs = [("run", "Tests result", "SUCCESS", "FAILURE"),
             ("module", "test_monitoring", "passed", "failed (1 failure)"),
             ("test", test, "ok", "FAIL")]
    assert accepted("python3.13", "cfunction", traced, diffs) == ((diffs, []) if ok else ([], diffs))
    assert accepted("python3.13", "all", traced, diffs)[0] == (diffs if ok else [])
    # not under another consumer, nor for another test, nor on a module that crashed
    assert accepted("python3.13", "function", traced, diffs) == ([], diffs)
    other = [("test", test.replace("shim_frame", "other"), "ok", "FAIL")]
    assert accepted("python3.13", "cfunction", traced, other) == ([], other)
    crashed = [("module", "test_monitoring", "passed", "started, no result"), diffs[2]]
    assert accepted("python3.13", "cfunction", traced, crashed)[1] == (
        crashed[:1] if ok else crashed)
    # on the series it is listed for, and only there
    assert accepted("python3.14-ft", "cfunction", traced, diffs)[0] == (diffs if ok else [])
    assert accepted("python2.7", "all", traced, diffs) == ([], diffs)


@pytest.mark.quick
def test_accepted_per_series():
    assert "test.test_monitoring.ExceptionMonitoringTest.test_implicit_stop_iteration" in \
        accepted_for("python3.13-jit", "line")
    assert "test.test_monitoring.ExceptionMonitoringTest.test_implicit_stop_iteration" not in \
        accepted_for("python3.14", "line")
    assert "test.test_monitoring.TestDisable.test_disable_legal_events" in \
        accepted_for("python3.14", "all")
    assert accepted_for("python2.7", "all") == []
