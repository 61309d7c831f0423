"""CPython's own regression tests, untraced and under a bpftrace consumer
(tests/test_regrtest.py): which tests, how a run goes, what its verbose
output says.

A run is one regrtest process over the modules of MODULES, in a single
process (no -j: `bpftrace -c` traces the process it starts, not workers),
verbose, its output in a file.  Its configuration is UNTRACED, or a
consumer: one bpftrace script counting the hits of the build's markers
("all": every python marker of its ELF) or of one family of FAMILIES, per
marker, `@[probe] = count()`, printed when bpftrace exits.

    python3 tests/cpython_tests.py BUILD [CONFIG...]

runs BUILD untraced and under each CONFIG (default: every config of the
build), prints each run's summary and the differences, for a look by hand.
"""

import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import consumers
import harness
import usdt

# The machinery the markers touch: the eval loop's hooks and the tools on
# them (profile, trace, pdb, sys.monitoring), frames, generators and
# coroutines, exceptions, gc, audit, threads; then fork and exec.  Python
# 2.7 lacks test_monitoring, test_coroutines, test_asyncgen, test_audit and
# test_frame.
CORE = ("test_sys_setprofile", "test_sys_settrace", "test_monitoring", "test_profile",
        "test_cprofile", "test_pdb", "test_bdb", "test_trace", "test_generators",
        "test_coroutines", "test_asyncgen", "test_gc", "test_audit", "test_exceptions",
        "test_contextlib", "test_functools", "test_frame", "test_scope", "test_sys",
        "test_threading")
NOT_IN_27 = ("test_monitoring", "test_coroutines", "test_asyncgen", "test_audit", "test_frame")

MODULES = {
    "python2.7": tuple(m for m in CORE if m not in NOT_IN_27) + (
        # Whole: 2.7's subprocess forks and runs Python in the child before
        # every exec, so all of it is fork coverage (about 20 s untraced,
        # most of it sleeping).
        "test_subprocess",
        # Whole (about 25 s untraced, sleeping): processes, pools, queues,
        # managers, all forked.
        "test_multiprocessing",
    ),
    "python3.13": CORE + (
        # Less IGNORE below: the POSIX fork/exec paths (preexec_fn runs
        # Python in the forked child; close_fds, restore_signals, new
        # sessions, process groups, signals) and subprocess.run.
        "test_subprocess",
        # Less IGNORE below: forked processes, pools, queues, locks and
        # connections, each child running Python with the consumer's
        # semaphores inherited.
        "test_multiprocessing_fork.test_processes",
    ),
}
MODULES["python3.14"] = MODULES["python3.13"]

# Test classes left out of a run (regrtest -i, 3.x only), each for time:
# untraced, 3.13 runs all of test_subprocess in about 19 s and all of
# test_processes in about 25 s, mostly sleeping in timeouts; what is left
# of them takes about 8 s and 9 s.
IGNORE = {
    "python3.13": (
        # Popen's generic behaviour, without preexec_fn: the vfork+exec
        # path, run twice (poll and select)
        "test.test_subprocess.ProcessTestCase.*",
        "test.test_subprocess.ProcessTestCaseNoPoll.*",
    ) + tuple(
        "test.test_multiprocessing_fork.test_processes.WithProcessesTest%s.*" % c for c in (
            # timeouts and polling: sleeps, not fork
            "Poll", "PollEintr", "Barrier", "Condition", "ListenerClient",
            "ManagerRestart", "SharedMemory", "PoolWorkerLifetime")),
}
IGNORE["python3.14"] = IGNORE["python3.13"]

# The consumer configurations: "all" attaches to every python marker the
# build's ELF has; the others, to one family alone (3.x only).
FAMILIES = {
    "function": ("function__entry", "function__return"),
    "cfunction": ("cfunction__entry", "cfunction__return"),
    "line": ("line",),
}
UNTRACED = "untraced"

# regrtest's per-test timeout (3.x), and each run's as a whole.
TEST_TIMEOUT = 300
RUN_TIMEOUT = 900


def configs(build):
    """The consumer configurations a build is tested under: every marker
    at once ("all").  Not the families alone, for CI's time: their
    instrumentation is part of "all"'s (the line family's LINE and JUMP
    among it), and test_semantics.py traces each family on every build
    (calls.bt, lines.bt)."""
    return ["all"]


def build_markers(build):
    """The python markers the build's ELF has (its .note.stapsdt)."""
    return sorted({s.name for s in usdt.read_sites(harness.marker_object(build))
                   if s.provider == usdt.PROVIDER})


def config_markers(build, config):
    if config == "all":
        return build_markers(build)
    missing = set(FAMILIES[config]) - set(build_markers(build))
    assert not missing, "%s lacks %s" % (build, sorted(missing))
    return list(FAMILIES[config])


def command(build, tempdir):
    """The regrtest command line for a build."""
    series = harness.series_of(build)
    # The interpreter itself, not build/bin's link to it: a test that starts
    # sys.executable isolated (3.14's test_pdb REPL tests, python -I) finds
    # the build tree's standard library only from the real path.
    python = os.path.realpath(harness.interpreter(build))
    if series.startswith("python2"):
        # 2.7's regrtest takes its temporary directory from TMPDIR.
        return [python, "-m", "test.regrtest", "-v"] + list(MODULES[series])
    args = [python, "-m", "test", "-v", "--tempdir", tempdir, "--timeout", str(TEST_TIMEOUT)]
    for pattern in IGNORE.get(series, ()):
        args += ["-i", pattern]
    return args + list(MODULES[series])


def environment(build, tempdir):
    """The runs' environment: no PYTHON* variable from outside, unbuffered
    (stdout and stderr share a file, in the order they were written).  On
    a build with usdtmon (B+usdtmon), every process that reads PYTHONPATH
    loads it at start-up (a sitecustomize in tempdir/site) and fires every
    family (USDTMON_MARKERS=all), as a site-wide install would have it."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("PYTHON"))
    env.update(PYTHONUNBUFFERED="1", TMPDIR=tempdir)
    if harness.is_module(build):
        site = os.path.join(tempdir, "site")
        os.makedirs(site, exist_ok=True)
        with open(os.path.join(site, "sitecustomize.py"), "w") as f:
            f.write("import usdtmon\n")
        env.update(PYTHONPATH=site + os.pathsep + harness.module_dir(build),
                   USDTMON_MARKERS="all")
    return env


def script(build, config):
    obj = harness.marker_object(build)
    probes = ",\n".join("usdt:%s:python:%s" % (obj, m) for m in config_markers(build, config))
    return 'BEGIN { printf("tracing\\n"); }\n%s\n{ @[probe] = count(); }\n' % probes


COUNT = re.compile(r"^@\[usdt:.*:python:(\w+)\]: (\d+)$")


class Run(object):
    """One regrtest run: its output, timing, the consumer's counts and the
    parsed results."""

    def __init__(self, build, config, directory):
        self.build, self.config, self.directory = build, config, directory
        self.out = os.path.join(directory, "out.txt")
        self.counts_file = os.path.join(directory, "counts.txt")
        self.seconds = None
        self.timed_out = False
        self.error = None
        self.procs = []
        self.consumer_error = None
        self.counts = {}
        self.text = ""

    @property
    def name(self):
        return "%s-%s" % (self.build, self.config)

    def go(self):
        os.makedirs(self.directory)
        tempdir = os.path.join(self.directory, "tmp")
        os.makedirs(tempdir)
        cmd = command(self.build, tempdir)
        env = environment(self.build, tempdir)
        start = time.time()
        if self.config == UNTRACED:
            with open(self.out, "w") as f:
                self._wait(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.directory, start_new_session=True))
        else:
            bt = os.path.join(self.directory, "consumer.bt")
            with open(bt, "w") as f:
                f.write(script(self.build, self.config))
            if harness.marker_object(self.build) == os.path.realpath(cmd[0]):
                self._traced(cmd, env, bt)
            else:
                self._system_wide(cmd, env, bt)
        self.seconds = time.time() - start
        with open(self.out, errors="replace") as f:
            self.text = f.read()
        self.parse()
        return self

    def kill(self):
        """Kill the run's processes (their process groups)."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass

    def _wait(self, proc, timeout=RUN_TIMEOUT):
        self.procs.append(proc)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait()

    def _traced(self, cmd, env, bt):
        """bpftrace starts the interpreter (-c, which takes no quoting: the
        arguments have no spaces); the interpreter inherits bpftrace's
        stdout and stderr, the output file, and bpftrace writes its own
        output to counts.txt (-o)."""
        assert not any(" " in a for a in cmd), cmd
        with open(self.out, "w") as f:
            proc = subprocess.Popen(["bpftrace", "-o", self.counts_file, "-c", " ".join(cmd), bt],
                                    stdout=f, stderr=subprocess.STDOUT, env=env,
                                    cwd=self.directory, start_new_session=True)
            rc = self._wait(proc)
        self._read_counts(rc)

    def _system_wide(self, cmd, env, bt):
        """Markers in libpython: bpftrace 0.17 cannot place them in a
        process it starts, so attach system-wide first (as
        consumers.Bpftrace.trace does), then run; the counts then include any
        other process of this build running meanwhile."""
        tracer = consumers.Bpftrace().start(bt, self.counts_file, start_new_session=True)
        self.procs.append(tracer)
        try:
            with open(self.out, "w") as f:
                self._wait(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.directory, start_new_session=True))
        finally:
            stderr = consumers.Bpftrace.interrupt(tracer)
        self._read_counts(tracer.returncode, stderr)

    def _read_counts(self, returncode, stderr=""):
        text = open(self.counts_file).read() if os.path.exists(self.counts_file) else ""
        for line in text.splitlines():
            m = COUNT.match(line)
            if m:
                self.counts[m.group(1)] = int(m.group(2))
        if returncode != 0 or "tracing" not in text:
            self.consumer_error = "bpftrace exited %s; its output:\n%s%s" % (
                returncode, text[-2000:], stderr[-2000:])

    # --- the output ------------------------------------------------------

    def parse(self):
        self.lines = self.text.splitlines()
        parsed = parse(self.lines, self.requested())
        self.tests, self.test_lines, self.modules, self.module_lines, self.result = parsed

    def requested(self):
        return [m for m in MODULES[harness.series_of(self.build)]]

    def totals(self):
        """{outcome: count} over the tests."""
        totals = {}
        for outcome in self.tests.values():
            totals[outcome] = totals.get(outcome, 0) + 1
        return totals

    def summary(self):
        totals = ", ".join("%d %s" % (n, o) for o, n in sorted(self.totals().items()))
        bad = ["%s: %s" % (m, o) for m, o in sorted(self.modules.items()) if o != "passed"]
        text = "%-24s %6.1f s  %5d tests (%s)" % (self.name, self.seconds or 0,
                                                 len(self.tests), totals)
        if bad:
            text += "; modules: " + "; ".join(bad)
        if self.result != "SUCCESS":
            text += "; result: %s" % self.result
        if self.counts:
            text += "\n    consumer: " + " ".join(
                "%s=%d" % kv for kv in sorted(self.counts.items()))
        return text

    def excerpt(self, test_id):
        """The output lines about one test: its verbose line(s), and its
        traceback from the module's report."""
        lines = []
        for start, end in self.test_lines.get(test_id, []):
            lines += self.lines[start:min(end, start + 12)]
            if end > start + 12:
                lines.append("[... %d more lines]" % (end - start - 12))
        report = tracebacks(self.lines).get(test_id)
        if report:
            lines += condensed(report)
        return lines


def condensed(report, limit=40):
    """A failure report in at most about limit lines: a doctest's first
    failed example as a diff of what it expected and got, else the
    report's head and tail (where the exception is)."""
    if len(report) <= limit:
        return report
    stripped = [line.strip() for line in report]
    if "Got:" in stripped and "Expected:" in stripped[:stripped.index("Got:")]:
        got = stripped.index("Got:")
        expected = max(i for i in range(got) if stripped[i] == "Expected:")
        end = next((i for i in range(got + 1, len(report))
                    if report[i].strip() and not report[i].startswith(" ")), len(report))
        diff = list(difflib.unified_diff(report[expected + 1:got], report[got + 1:end],
                                         "expected", "got", lineterm="", n=2))
        return report[:4] + ["[the first failed example: what the doctest expected, "
                             "and what it got]"] + diff[2:limit + 2]
    return report[:6] + ["[... %d lines]" % (len(report) - limit)] + report[-(limit - 6):]


# --- parsing regrtest's verbose output ------------------------------------------

# regrtest's progress line: "0:00:05 load avg: 1.20 [ 3/20] test_x", and on
# 3.x after the module "... [ 3/20/1] test_x failed (2 failures) in 35.1 sec".
PROGRESS = re.compile(r"^\d+:\d\d:\d\d (?:load avg: [\d.]+ )?\[\s*\d+/\d+(?:/\d+)?\] "
                      r"(\S+)(?: (.*))?$")
# unittest's verbose description: "test_x (test.test_m.Class.test_x)" (3.x),
# "test_x (test.test_m.Class)" (2.7, and 3.x doctests), then a subtest's
# " [msg] (params)".
DESCRIPTION = re.compile(r"^\s*(\w+) \(([\w.]+)\)((?: \[.*?\])?(?: \(.*\))?)$")
# (2.7's run_doctest says "doctest (test.test_m) ... 18 tests with zero
# failures", and nothing if some failed: it raises.)
# "description ... status", the status perhaps on a later line
ELLIPSIS = re.compile(r"^(.*?) \.\.\.(?: (.*))?$")
STATUS = re.compile(r"^(ok|FAIL|ERROR|expected failure|unexpected success|skipped(?: .*)?"
                    r"|\d+ tests with zero failures)$")
# The summary: "3 tests failed:", "All 20 tests OK.", "1 test skipped:" ...
SUMMARY = re.compile(r"^(?:All )?\d+ (?:re-run )?tests? (.*?)[:.]$")
RESULT = re.compile(r"^(?:== )?Tests result: (.*?)(?: ==)?$")
# The tail of a 3.x module result that changes from run to run.
DURATION = re.compile(r" in \d[\w .]*$")


def test_id(name, where, sub):
    tid = where if where.endswith("." + name) else where + "." + name
    return tid + sub


def outcome_of(status):
    """A status line's outcome: a skip's reason left out."""
    if status.startswith("skipped"):
        return "skipped"
    m = re.match(r"(\d+) tests with zero failures", status)
    return "ok (%s doctests)" % m.group(1) if m else status


def parse(lines, requested):
    """(tests, test_lines, modules, module_lines, result) of a run's output:

    tests        {test id: outcome}, outcome one of ok, FAIL, ERROR, skipped,
                 expected failure, unexpected success, or "no status" for a
                 test that started and never said how it ended (its process
                 died, or one of its subtests failed: a subtest has an id of
                 its own, the test's with the subtest's parameters);
    test_lines   {test id: [(first line, line after its status)]}
    modules      {module: outcome} for each requested module: 3.x's result
                 ("passed", "failed (2 failures)", ...), 2.7's summary
                 ("passed", "failed", ...); "started, no result" or "not
                 run" if the run ended first;
    module_lines {module: index of the line that started it}
    result       regrtest's "Tests result", or "none (the run ended before
                 its summary)".
    """
    tests, where, modules, module_lines = {}, {}, {}, {}
    pending = None
    summary_lists, category = {}, None
    result = None
    for i, line in enumerate(lines):
        m = PROGRESS.match(line)
        if m:
            name, text = m.group(1), m.group(2)
            previous = re.match(r"-- (\S+) (.*)$", text or "")
            if previous:
                # 2.7: "[ 4/17] test_x -- test_w failed": test_x starts;
                # the previous module's result, if it failed or was slow.
                modules[previous.group(1)] = DURATION.sub("", previous.group(2))
                text = None
            if text:
                # 3.x: "[ 3/20] test_w failed (2 failures) in 35.1 sec"
                if text.startswith(name + " "):
                    text = text[len(name) + 1:]
                modules[name] = DURATION.sub("", text)
            else:
                module_lines[name] = i
            pending = None
            continue
        m = RESULT.match(line)
        if m:
            result, category = m.group(1), None
            continue
        if result is not None:
            # The summary at the end: lists of modules under headings.
            m = SUMMARY.match(line)
            if m:
                category = m.group(1)
            elif category and line.startswith("    "):
                for name in line.split():
                    summary_lists[name] = category
            else:
                category = None
            continue
        split = ELLIPSIS.match(line)
        head, sep, rest = (split.group(1), True, split.group(2) or "") if split else (line, False, "")
        m = DESCRIPTION.match(head)
        if m and (sep or not line.startswith(" ")):
            # A test starts; with a docstring, its status comes on a later
            # line, after the docstring's first line and " ... ".  A
            # subtest's line (indented) comes with its status.
            tid = test_id(*m.groups())
            if tests.get(tid, "no status") != "no status":
                n = 2                     # the same id again: keep both
                while "%s #%d" % (tid, n) in tests:
                    n += 1
                tid = "%s #%d" % (tid, n)
            tests.setdefault(tid, "no status")
            where.setdefault(tid, []).append((i, i + 1))
            pending = tid
            text = rest.strip() if sep else ""
        elif pending is not None:
            # The pending test's status: after " ... ", or at the start of
            # a line when the test wrote output of its own.
            text = (rest if sep else line).strip()
        else:
            continue
        if STATUS.match(text):
            tests[pending] = outcome_of(text)
            start, _ = where[pending][-1]
            where[pending][-1] = (start, i + 1)
            pending = None
    if result is None:
        result = "none (the run ended before its summary)"
    for name in requested:
        if name in modules:
            continue
        if name in summary_lists:
            modules[name] = summary_lists[name]
        elif name not in module_lines:
            modules[name] = "not run"
        elif result.startswith("none"):
            modules[name] = "started, no result"
        else:
            # 2.7's summary lists every module but those that passed.
            modules[name] = "passed"
    return tests, where, modules, module_lines, result


def tracebacks(lines):
    """{test id: the lines of its FAIL:/ERROR: report} from the reports
    unittest prints after each module."""
    reports, current = {}, None
    for line in lines:
        m = re.match(r"^(FAIL|ERROR): (.*)$", line)
        if m:
            d = DESCRIPTION.match(m.group(2))
            current = test_id(*d.groups()) if d else m.group(2)
            reports[current] = [line]
            continue
        if current is None:
            continue
        if line.startswith("=" * 70) or re.match(r"^Ran \d+ tests? in", line):
            current = None
            continue
        reports[current].append(line)
    for report in reports.values():
        while report and not report[-1].strip("- "):
            report.pop()                  # the separator before "Ran N tests"
    return reports


# --- comparing runs ---------------------------------------------------------------

def differences(baseline, traced):
    """[(kind, name, untraced outcome, traced outcome)] where the runs differ:
    kind "run" (regrtest's result), "module" or "test"."""
    diffs = []
    if baseline.result != traced.result:
        diffs.append(("run", "Tests result", baseline.result, traced.result))
    for kind, a, b in (("module", baseline.modules, traced.modules),
                       ("test", baseline.tests, traced.tests)):
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                diffs.append((kind, name, a.get(name, "absent"), b.get(name, "absent")))
    return diffs


def main(argv):
    build = argv[1]
    wanted = argv[2:] or configs(build)
    top = os.path.join("/tmp", "pst-regrtest-manual")
    shutil.rmtree(top, ignore_errors=True)
    baseline = Run(build, UNTRACED, os.path.join(top, build, UNTRACED)).go()
    print(baseline.summary())
    for config in wanted:
        run = Run(build, config, os.path.join(top, build, config)).go()
        print(run.summary())
        if run.consumer_error:
            print("    " + run.consumer_error)
        for diff in differences(baseline, run):
            print("    %s %s: %s -> %s" % diff)
    print("outputs under", top)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv)
